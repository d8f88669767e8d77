"""The classic PyTorch word2vec tutorial, with torchw2v's ``SkipGramNS`` as the model.

Skip-gram with negative sampling on a few toy sentences, trained with autograd and Adam: a
vocabulary dict, (center, context) pairs in a ``Dataset``, a shuffled ``DataLoader`` and
negatives drawn per batch from the unigram distribution raised to 0.75. Runs in seconds:
``python examples/seed_recipe.py``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from torchw2v import SkipGramNS

SENTENCES = [
    "the king is a strong man",
    "the queen is a wise woman",
    "the king and the queen rule the kingdom",
    "a man is a boy grown up",
    "a woman is a girl grown up",
    "the prince is the son of the king",
    "the princess is the daughter of the queen",
    "the cat chases the mouse",
    "the dog chases the cat",
    "a dog and a cat are pets",
]
WINDOW, NEGATIVES, DIM, EPOCHS, BATCH = 2, 5, 16, 300, 32


class SkipGramPairs(Dataset):
    """Every (center, context) id pair within ``window`` words of each other.

    Parameters
    ----------
    sentences : list of list of int
        Sentences as word ids.
    window : int
        Largest distance between a center word and its context words.
    """

    def __init__(self, sentences: list[list[int]], window: int):
        self.pairs = torch.tensor(
            [
                (ids[i], ids[j])
                for ids in sentences
                for i in range(len(ids))
                for j in range(max(0, i - window), min(len(ids), i + window + 1))
                if j != i
            ]
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pairs[index, 0], self.pairs[index, 1]


def nearest(model: SkipGramNS, vocab: dict[str, int], word: str, topn: int = 3) -> list[str]:
    """The ``topn`` words whose input vectors are closest to ``word``'s by cosine."""
    vectors = torch.nn.functional.normalize(model.input.weight.detach(), dim=1)
    similarity = vectors @ vectors[vocab[word]]
    similarity[vocab[word]] = -1.0
    words = list(vocab)
    return [words[i] for i in similarity.topk(topn).indices.tolist()]


def main() -> None:
    torch.manual_seed(0)
    tokenized = [sentence.split() for sentence in SENTENCES]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(w for s in tokenized for w in s))}
    counts = torch.zeros(len(vocab))
    for sentence in tokenized:
        for word in sentence:
            counts[vocab[word]] += 1
    noise = counts**0.75 / (counts**0.75).sum()

    pairs = SkipGramPairs([[vocab[w] for w in s] for s in tokenized], WINDOW)
    loader = DataLoader(pairs, batch_size=BATCH, shuffle=True)
    model = SkipGramNS(len(vocab), DIM)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(f"{len(vocab)} words, {len(pairs)} pairs, {EPOCHS} epochs")

    for epoch in range(1, EPOCHS + 1):
        total = 0.0
        for center, context in loader:
            negatives = torch.multinomial(noise, len(center) * NEGATIVES, replacement=True)
            loss = model(center, context, negatives.view(len(center), NEGATIVES))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(center)
        if epoch == 1 or epoch % 50 == 0:
            print(f"epoch {epoch:3d}  loss {total / len(pairs):.4f}")

    for word in ("king", "queen", "cat"):
        print(f"nearest to {word!r}: {', '.join(nearest(model, vocab, word))}")


if __name__ == "__main__":
    main()
