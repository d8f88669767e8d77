"""The objectives word2vec trains, stated once: skip-gram or CBOW, with negative sampling or
hierarchical softmax.

Every objective is a set of logistic regressions. An input ``h`` predicts the center word
through rows ``o`` of an output matrix, each with a label; the score is ``f = h . o`` and one
SGD step with learning rate ``alpha`` is, as in word2vec.c::

    g = (label - sigmoid(f)) * alpha
    o += g * h                 # each output row, from the values before the step
    input words += sum(g * o)  # their rows of syn0

Two independent choices make the four objectives (as in fastText, where the architecture
only decides which input vectors are combined and the loss which output rows are scored):

- the architecture decides the inputs. Skip-gram (:func:`skip_gram_step`): each context
  word's vector is an input of its own, one prediction per (center, context) pair. CBOW
  (:func:`cbow_step`): the mean (or sum) of the context vectors is one input per center, and
  each context word takes the whole error (its share of it, with the sum), as in gensim.
- the loss decides the output rows (:class:`Targets`). Negative sampling
  (:func:`negative_sampling`): rows of ``syn1neg`` for the center word (label 1) and its
  ``K`` negatives (label 0). Hierarchical softmax (:func:`hierarchical_softmax`): rows of
  ``syn1`` for the inner nodes on the center word's Huffman path (label ``1 - code``).

word2vec.c's MAX_EXP rule (:func:`logistic_step`): beyond ``+-MAX_EXP`` the sigmoid is 1 or
0, and a hierarchical-softmax node scored beyond it is not trained at all. The loss is the
exact ``-log sigmoid(+-f)`` over every target.

These functions are the torch engine's update, over batches of centers (shapes: ``B``
centers, ``C`` inputs per center, ``T`` targets per center, ``d`` dimensions); all updates
of a batch are computed from the same vectors and summed. The compiled CPU op
(``engines/csrc/word2vec_cpu.cpp``) and the Triton kernel (:mod:`.engines.triton_engine`)
compute the same arithmetic fused. :class:`SkipGramNS` states skip-gram negative sampling as
an ``nn.Module``, to train with autograd and any torch optimizer.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

MAX_EXP = 6.0
"""word2vec.c's MAX_EXP: above it the sigmoid is 1, below its negative 0."""


class Targets(NamedTuple):
    """The output rows one loss scores for a batch, ``T`` per center."""

    weights: torch.Tensor  # (V, d) syn1neg or syn1, updated in place
    rows: torch.Tensor  # (B, T) int64 rows of weights
    labels: torch.Tensor  # (T,) or (B, 1, T) float: 1 for the true outcome, 0 otherwise
    mask: torch.Tensor  # (B, T) bool: the rows that take part
    skip_saturated: bool  # a score beyond +-MAX_EXP trains nothing (hierarchical softmax)


class Windows(NamedTuple):
    """Each center's context window in a batch, ``2W`` positions either side at most."""

    contexts: torch.Tensor  # (B, 2W) int64 ids of the words around each center
    valid: torch.Tensor  # (B, 2W) bool: the real contexts (inside the reduced window and sentence)


def negative_sampling(
    syn1neg: torch.Tensor, centers: torch.Tensor, negatives: torch.Tensor
) -> Targets:
    """The center word (label 1) and its ``K`` negatives (label 0), in ``syn1neg``.

    ``centers`` is ``(B,)``, ``negatives`` ``(B, K)``; a negative that is its center word is
    skipped, as in gensim.
    """
    rows = torch.cat([centers[:, None], negatives], 1)  # (B, 1 + K)
    labels = torch.zeros(rows.shape[1], device=rows.device)  # (1 + K,)
    labels[0] = 1.0
    mask = rows != centers[:, None]  # (B, 1 + K)
    mask[:, 0] = True
    return Targets(syn1neg, rows, labels, mask, skip_saturated=False)


def hierarchical_softmax(
    syn1: torch.Tensor,
    points: torch.Tensor,
    codes: torch.Tensor,
    lengths: torch.Tensor,
    centers: torch.Tensor,
) -> Targets:
    """The inner nodes on each center word's Huffman path (label ``1 - code``), in ``syn1``.

    ``points`` and ``codes`` are the ``(V, L)`` padded paths, ``lengths`` ``(V,)``,
    ``centers`` ``(B,)``.
    """
    rows = points[centers]  # (B, L)
    labels = 1.0 - codes[centers].float()[:, None, :]  # (B, 1, L)
    mask = torch.arange(points.shape[1], device=rows.device) < lengths[centers, None]  # (B, L)
    return Targets(syn1, rows, labels, mask, skip_saturated=True)


def saturated_sigmoid(scores: torch.Tensor) -> torch.Tensor:
    """``sigmoid(scores)``, exactly 1 at ``MAX_EXP`` and above, 0 at ``-MAX_EXP`` and below."""
    return (
        torch.sigmoid(scores)
        .masked_fill(scores >= MAX_EXP, 1.0)
        .masked_fill(scores <= -MAX_EXP, 0.0)
    )


def logistic_step(
    inputs: torch.Tensor,
    active: torch.Tensor,
    targets: Targets,
    alpha: float,
    compute_loss: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SGD step of the logistic regressions of ``targets`` on ``inputs``.

    Updates the output rows in place and returns the ``(B, C, d)`` update of the inputs, the
    summed loss (0 unless ``compute_loss``) and the number of NaN or infinite scores.
    ``inputs`` is ``(B, C, d)``; ``active`` ``(B, C)`` marks the predictions that take part.
    """
    out = targets.weights[targets.rows]  # (B, T, d)
    scores = torch.bmm(inputs, out.transpose(1, 2))  # (B, C, T)
    scored = active[:, :, None] & targets.mask[:, None, :]  # (B, C, T)
    trained = scored
    if targets.skip_saturated:  # word2vec.c leaves such a Huffman node alone
        trained = scored & (scores.abs() < MAX_EXP)
    g = (targets.labels - saturated_sigmoid(scores)) * trained * alpha  # (B, C, T)
    grad_out = torch.bmm(g.transpose(1, 2), inputs)  # (B, T, d)
    targets.weights.index_add_(0, targets.rows.flatten(), grad_out.flatten(0, 1))
    loss = torch.zeros((), device=scores.device)
    if compute_loss:  # -log sigmoid(f) for label 1, -log sigmoid(-f) for label 0
        signed = torch.where(targets.labels.bool(), scores, -scores)
        loss = -(F.logsigmoid(signed) * scored).sum()
    nonfinite = (~torch.isfinite(scores)).sum()
    return torch.bmm(g, out), loss, nonfinite


def skip_gram_step(
    syn0: torch.Tensor,
    windows: Windows,
    losses: list[Targets],
    alpha: float,
    compute_loss: bool,
) -> torch.Tensor:
    """Skip-gram: each context word's vector predicts its center through every loss.

    Returns ``[predictions, loss, NaN/inf scores]``: one prediction per (center, context).
    """
    contexts, valid = windows
    inputs = syn0[contexts]  # (B, 2W, d)
    grad, loss, nonfinite = _step_all(inputs, valid, losses, alpha, compute_loss)
    syn0.index_add_(0, contexts[valid], grad[valid])
    return torch.stack([valid.sum(), loss, nonfinite]).double()


def cbow_step(
    syn0: torch.Tensor,
    windows: Windows,
    mean: bool,
    losses: list[Targets],
    alpha: float,
    compute_loss: bool,
) -> torch.Tensor:
    """CBOW: the ``mean`` (else the sum) of the context vectors predicts the center through
    every loss. Returns as :func:`skip_gram_step`: one prediction per center with a context.
    """
    contexts, valid = windows
    count = valid.sum(1, keepdim=True)[:, :, None]  # (B, 1, 1)
    neu1 = (syn0[contexts] * valid[:, :, None]).sum(1, keepdim=True)  # (B, 1, d)
    if mean:
        neu1 = neu1 / count.clamp(min=1)
    active = count[:, :, 0] > 0  # (B, 1)
    grad, loss, nonfinite = _step_all(neu1, active, losses, alpha, compute_loss)  # (B, 1, d)
    if not mean:  # each context takes its share of the sum's error, else the whole error
        grad = grad / count.clamp(min=1)
    grad = grad.expand(-1, contexts.shape[1], -1)  # (B, 2W, d)
    syn0.index_add_(0, contexts[valid], grad[valid])
    return torch.stack([active.sum(), loss, nonfinite]).double()


def _step_all(
    inputs: torch.Tensor,
    active: torch.Tensor,
    losses: list[Targets],
    alpha: float,
    compute_loss: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`logistic_step` of every loss from the same inputs; their sums."""
    steps = [logistic_step(inputs, active, t, alpha, compute_loss) for t in losses]
    grads, loss, nonfinite = zip(*steps)
    return sum(grads), sum(loss), sum(nonfinite)


class SkipGramNS(nn.Module):
    """Input and output embeddings scored with the skip-gram negative-sampling loss.

    The autograd form of :func:`skip_gram_step` with :func:`negative_sampling`, for any torch
    optimizer (see ``examples/seed_recipe.py``); the loss is the exact one, without MAX_EXP.

    Parameters
    ----------
    vocab_size : int
        Number of words.
    vector_size : int
        Dimensionality of the vectors.
    input_vectors, output_vectors : torch.Tensor, optional
        ``(vocab_size, vector_size)`` tensors to use (and share memory with) as the input
        (gensim's ``wv.vectors``) and output (``syn1neg``) embeddings. By default the input
        vectors are uniform in ``[-1/vector_size, 1/vector_size)`` and the outputs zero, as in
        gensim.
    """

    def __init__(
        self,
        vocab_size: int,
        vector_size: int,
        input_vectors: torch.Tensor | None = None,
        output_vectors: torch.Tensor | None = None,
    ):
        super().__init__()
        if input_vectors is None:
            input_vectors = (torch.rand(vocab_size, vector_size) * 2 - 1) / vector_size
        if output_vectors is None:
            output_vectors = torch.zeros(vocab_size, vector_size)
        self.input = nn.Embedding(vocab_size, vector_size, _weight=input_vectors)
        self.output = nn.Embedding(vocab_size, vector_size, _weight=output_vectors)

    def forward(
        self, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """Mean SGNS loss of a batch of pairs.

        Parameters
        ----------
        center : torch.Tensor
            ``(B,)`` ids whose input vectors predict.
        context : torch.Tensor
            ``(B,)`` ids of the observed words (label 1).
        negatives : torch.Tensor
            ``(B, K)`` ids of sampled noise words (label 0).

        Returns
        -------
        torch.Tensor
            Scalar ``-log σ(u·v) - Σ_k log σ(-u·n_k)`` averaged over the batch.
        """
        u = self.input(center)  # (B, d)
        v = self.output(context)  # (B, d)
        n = self.output(negatives)  # (B, K, d)
        positive = F.logsigmoid((u * v).sum(-1))  # (B,)
        negative = F.logsigmoid(-torch.bmm(n, u.unsqueeze(-1)).squeeze(-1)).sum(-1)  # (B,)
        return -(positive + negative).mean()
