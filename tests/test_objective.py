"""torchw2v.objective: the update of every objective with word2vec.c's MAX_EXP rule, and
SkipGramNS, the SGNS objective as an nn.Module, checked by hand and trained with autograd."""

from __future__ import annotations

import math

import pytest
import torch

from torchw2v import SkipGramNS, objective
from torchw2v.objective import MAX_EXP


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_forward_equals_hand_computation():
    torch.manual_seed(0)
    vocab, dim = 7, 4
    inputs, outputs = torch.randn(vocab, dim), torch.randn(vocab, dim)
    module = SkipGramNS(vocab, dim, inputs.clone(), outputs.clone())
    center = torch.tensor([0, 3, 5])
    context = torch.tensor([1, 2, 6])
    negatives = torch.tensor([[2, 4], [0, 6], [3, 3]])
    loss = module(center, context, negatives)
    assert loss.shape == ()

    total = 0.0
    for c, o, negs in zip(center.tolist(), context.tolist(), negatives.tolist()):
        u = inputs[c].tolist()
        dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
        pair = -log_sigmoid(dot(u, outputs[o].tolist()))
        pair -= sum(log_sigmoid(-dot(u, outputs[n].tolist())) for n in negs)
        total += pair
    assert loss.item() == pytest.approx(total / 3, rel=1e-5)


def test_default_initialisation_is_gensims():
    torch.manual_seed(0)
    module = SkipGramNS(50, 8)
    assert module.input.weight.shape == module.output.weight.shape == (50, 8)
    assert torch.all(module.input.weight.abs() <= 1 / 8)
    assert module.input.weight.std() > 0
    assert torch.all(module.output.weight == 0)
    # all-zero outputs: every score is 0, so the loss is (1 + K) log 2
    loss = module(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([[4, 5, 6], [7, 8, 9]]))
    assert loss.item() == pytest.approx(4 * math.log(2), rel=1e-6)


def test_given_tensors_share_memory():
    inputs, outputs = torch.zeros(5, 3), torch.zeros(5, 3)
    module = SkipGramNS(5, 3, inputs, outputs)
    with torch.no_grad():
        module.input.weight[2] += 1.0
        module.output.weight[4] -= 2.0
    assert torch.all(inputs[2] == 1.0) and torch.all(outputs[4] == -2.0)


def test_gradients_flow():
    torch.manual_seed(1)
    module = SkipGramNS(10, 6)
    center, context = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    negatives = torch.tensor([[6, 7], [8, 9], [6, 9]])
    module(center, context, negatives).backward()
    # zero output vectors: the input gradient (a sum of output vectors) is zero at first
    assert module.output.weight.grad.abs().sum() > 0
    assert torch.all(module.output.weight.grad[[0, 1, 2]] == 0)  # rows never used as outputs

    with torch.no_grad():
        module.output.weight.normal_()
    module.zero_grad()
    module(center, context, negatives).backward()
    grad_in = module.input.weight.grad
    assert torch.all(grad_in[[0, 1, 2]].abs().sum(1) > 0)
    assert torch.all(grad_in[3:] == 0)  # only the centers' input vectors are used


def test_adam_lowers_the_loss_on_a_planted_dataset():
    """Words 0-4 and 5-9 form two clusters; pairs come from within a cluster."""
    torch.manual_seed(2)
    vocab, batch, k = 10, 256, 3
    module = SkipGramNS(vocab, 8)
    with torch.no_grad():
        module.output.weight.normal_(std=0.1)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)

    def sample():
        center = torch.randint(vocab, (batch,))
        context = (center // 5) * 5 + torch.randint(5, (batch,))
        negatives = ((center // 5 + 1) % 2)[:, None] * 5 + torch.randint(5, (batch, k))
        return center, context, negatives

    fixed = sample()
    with torch.no_grad():
        start = module(*fixed).item()
    for _ in range(60):
        optimizer.zero_grad()
        module(*sample()).backward()
        optimizer.step()
    with torch.no_grad():
        end = module(*fixed).item()
    assert end < 0.5 * start

    # the learnt scores separate the clusters
    scores = module.input.weight @ module.output.weight.T
    same = torch.block_diag(torch.ones(5, 5), torch.ones(5, 5)).bool()
    assert scores[same].min() > scores[~same].max()


def one_prediction(score: float, skip_saturated: bool, label: float = 1.0):
    """One input (1, 1, 2) against one output row whose dot product with it is ``score``."""
    inputs = torch.tensor([[[score, 0.0]]])
    weights = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([label])
    mask = torch.ones(1, 1, dtype=torch.bool)
    targets = objective.Targets(weights, torch.tensor([[1]]), labels, mask, skip_saturated)
    grad, loss, nonfinite = objective.logistic_step(
        inputs, torch.ones(1, 1, dtype=torch.bool), targets, 0.5, compute_loss=True
    )
    return grad[0, 0, 0].item(), weights[1, 0].item() - 1.0, loss.item(), nonfinite.item()


@pytest.mark.parametrize("score", [MAX_EXP, 9.0, -MAX_EXP, -9.0])
def test_negative_sampling_saturates_beyond_max_exp(score):
    """word2vec.c: the sigmoid is 1 at MAX_EXP and above, 0 at -MAX_EXP and below."""
    grad, moved, loss, nonfinite = one_prediction(score, skip_saturated=False)
    g = 0.5 * (1.0 - (1.0 if score > 0 else 0.0))  # (label - sigmoid) * alpha
    assert grad == pytest.approx(g) and moved == pytest.approx(g * score)
    assert loss == pytest.approx(math.log1p(math.exp(-score)), rel=1e-5)  # the exact loss
    assert nonfinite == 0


@pytest.mark.parametrize("score", [MAX_EXP, 9.0, -MAX_EXP, -9.0])
def test_hierarchical_softmax_skips_a_node_beyond_max_exp(score):
    grad, moved, loss, _ = one_prediction(score, skip_saturated=True, label=0.0)
    assert grad == 0.0 and moved == 0.0
    assert loss == pytest.approx(math.log1p(math.exp(score)), rel=1e-5)


@pytest.mark.parametrize("skip_saturated", [False, True])
def test_inside_max_exp_the_sigmoid_is_exact(skip_saturated):
    score = 5.9
    grad, moved, _, _ = one_prediction(score, skip_saturated)
    g = 0.5 * (1.0 - 1 / (1 + math.exp(-score)))
    # 1 - sigmoid(5.9) in float32 keeps about 5 digits
    assert grad == pytest.approx(g, rel=1e-4) and moved == pytest.approx(g * score, rel=1e-4)


def test_skip_gram_ns_module_has_the_engines_loss():
    """SkipGramNS's loss is the summed loss of objective.skip_gram_step over the same pairs."""
    torch.manual_seed(3)
    vocab, dim = 9, 4
    inputs, outputs = torch.randn(vocab, dim) * 0.3, torch.randn(vocab, dim) * 0.3
    module = SkipGramNS(vocab, dim, inputs.clone(), outputs.clone())
    center, context = torch.tensor([0, 4]), torch.tensor([[1, 2], [5, 6]])  # (B,), (B, 2W)
    negatives = torch.tensor([[3, 7], [8, 3]])
    # SkipGramNS's center is the predicting input, its context the predicted output row
    losses = [objective.negative_sampling(outputs.clone(), center, negatives)]
    valid = torch.ones(2, 2, dtype=torch.bool)
    windows = objective.Windows(context, valid)
    stats = objective.skip_gram_step(inputs.clone(), windows, losses, 0.0, True)
    pairs = [(int(c), int(center[b]), negatives[b]) for b in range(2) for c in context[b]]
    expected = sum(
        module(torch.tensor([c]), torch.tensor([o]), n[None]).item() for c, o, n in pairs
    )
    assert stats[0].item() == 4
    assert stats[1].item() == pytest.approx(expected, rel=1e-5)
