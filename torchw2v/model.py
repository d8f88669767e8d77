"""The skip-gram negative-sampling objective as a PyTorch module.

This is the readable statement of what every engine optimises, and a way to train with
autograd and any torch optimizer (see ``examples/seed_recipe.py``). The fast engines in
:mod:`torchw2v.engines` apply the same objective's SGD update by hand, in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SkipGramNS(nn.Module):
    """Input and output embeddings scored with the SGNS loss.

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
