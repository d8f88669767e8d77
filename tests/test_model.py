"""SkipGramNS: the SGNS objective as an nn.Module, checked by hand and trained with autograd."""

from __future__ import annotations

import math

import pytest
import torch

from torchw2v import SkipGramNS


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
