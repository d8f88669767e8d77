"""One model trained across processes, GPUs and machines with ``torch.distributed``.

Launch with ``torchrun``: ``Word2Vec(..., distributed=True)`` (or the ``torchw2v train``
command, which goes distributed by itself when ``torchrun`` starts more than one process)
joins the process group that ``torchrun`` describes in the environment: gloo on CPU, NCCL on
CUDA, where rank ``r`` trains on ``cuda:LOCAL_RANK``.

- **Shards.** Each rank reads its own part of the corpus. A plain local ``corpus_file`` is
  cut into byte ranges, one per rank (a line belongs to the range holding its first byte, as
  gensim's ``corpus_file`` mode splits work among its threads); compressed or remote files
  and iterables are dealt out sentence by sentence (sentence ``i`` to rank ``i % world``).
- **Vocabulary.** Each rank counts its shard; the counts and each word's first occurrence
  are all-gathered and merged in corpus order, so every rank builds the vocabulary of the
  whole corpus, equal to gensim's (``max_vocab_size`` pruning, when set, prunes per rank).
- **Chunks in lockstep.** Every rank cuts its shard into the same number of chunks of about
  ``SyncPolicy.every_words / world`` words, and the learning rate at each cut follows the
  words done by all ranks together.
- **Synchronisation.** After every chunk the ranks add up the changes they made to the
  rows due (:class:`SyncPolicy` ``mode``): with 2 ranks, frequent words' rows at every
  synchronisation and rarer ones less often; every row at the end of each epoch. Between
  two synchronisations each rank trains on its own copy, as Hogwild threads do on shared
  rows.
- **Failures.** Collectives time out (``SyncPolicy.timeout``); a rank that dies or stalls
  makes the others raise :class:`RankFailure` instead of hanging.

Only rank 0 writes models and checkpoints (see :func:`is_writer` for your own outputs).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from .corpus import CorpusFile, ScannedCorpus, StreamedCorpus, seekable
from .trainer import ChunkPlan, EpochReport, OneProcess, Position

logger = logging.getLogger(__name__)

SYNC_MODES = ("delta", "rows", "average")
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
RARE_WORDS = 2**21  # words between two sends of the rarest rows at most, with 2 ranks
_RANK_STRIDE = 1 << 40  # sentence numbers of contiguous shards: rank * stride + local number


@dataclass(frozen=True)
class SyncPolicy:
    """How the ranks keep one model, and how long they wait for each other.

    Parameters
    ----------
    every_words : int
        Corpus words (all ranks together) trained between two synchronisations.
    mode : {"delta", "rows", "average"}
        ``"delta"``: the changes each rank made since a row was last sent are added up (an
        all-reduce), each row's sum scaled by :func:`saturation_scale` so that it moves as
        far as in one process making all the ranks' updates: a rare word's changes add up
        in full, a frequent word's (which every rank moved to the same place) are
        averaged. The rows of frequent words are sent at every synchronisation, rarer ones
        less often (``frequent``, ``rare_every``), and every row at the end of each epoch.
        ``"rows"``: every row some rank changed, at every synchronisation. ``"average"``:
        the ranks' weights are averaged (periodic model averaging), which divides each
        rank's step by the number of ranks.
    timeout : float
        Seconds a rank waits for the others in a collective before raising
        :class:`RankFailure` (used when torchw2v creates the process group).
    saturation : float, optional
        How often a word occurs in one rank's words between two synchronisations of its row
        for the row to move ``1 - 1/e`` of the way to where that rank's updates alone would
        settle it (:func:`saturation_scale`). Default ``512 / world`` (256 with 2 ranks, 64
        with 8), measured in ``benchmarks/RESULTS.md``.
    frequent : float
        ``"delta"``: a row whose word occurs at least this often in one rank's words between
        two synchronisations is sent at every one; a rarer word's row every ``k``-th (a
        power of two, at most ``rare_every``) with ``k`` times its occurrences about
        ``frequent``, so that each row is sent after about as many of its own updates.
    rare_every : int, optional
        ``"delta"``: the rarest words' rows are sent every ``rare_every``-th synchronisation
        (a power of two; 1 sends every row every time). Default with 2 ranks: every
        ``2**21`` words of all ranks at most (64 at the default ``every_words``, the interval
        measured); 1 with more ranks, where sending rows less often lost analogy points
        (``benchmarks/RESULTS.md``).
    """

    every_words: int = 2**15
    mode: str = "delta"
    timeout: float = 600.0
    saturation: float | None = None
    frequent: float = 8.0
    rare_every: int | None = None

    def __post_init__(self) -> None:
        saturation = 1 if self.saturation is None else self.saturation
        if self.every_words < 1 or self.timeout <= 0 or not saturation > 0:
            raise ValueError(
                f"SyncPolicy needs every_words >= 1, timeout > 0 and saturation > 0, got "
                f"every_words={self.every_words}, timeout={self.timeout}, "
                f"saturation={self.saturation}"
            )
        rare = 1 if self.rare_every is None else self.rare_every
        if not self.frequent > 0 or rare < 1 or rare & (rare - 1):
            raise ValueError(
                f"SyncPolicy needs frequent > 0 and rare_every a power of two, got "
                f"frequent={self.frequent}, rare_every={self.rare_every}"
            )
        if self.mode not in SYNC_MODES:
            raise ValueError(f"SyncPolicy mode must be one of {SYNC_MODES}, got {self.mode!r}")

    def for_world(self, world: int) -> SyncPolicy:
        """This policy with the defaults for ``world`` ranks filled in."""
        saturation = self.saturation or 512 / world
        longest = max(1, RARE_WORDS // int(self.every_words)).bit_length() - 1
        rare_every = self.rare_every or (1 << longest if world <= 2 else 1)
        return replace(self, saturation=saturation, rare_every=rare_every)


class RankFailure(ConnectionError):
    """Another rank died, stalled or cannot be reached, so this rank stopped training."""


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (or a launcher like it) started this process among several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_world_size() -> int:
    """Processes that the launcher started on this machine (1 outside ``torchrun``)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def is_writer() -> bool:
    """Whether this process writes outputs: rank 0 (of the process group, or as ``torchrun``
    numbered it before there is one), or a lone process.

    Examples
    --------
    >>> if is_writer():  # doctest: +SKIP
    ...     model.wv.save_word2vec_format("vectors.bin", binary=True)
    """
    if dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0  # torchrun's rank, before the group exists


class RoundRobin:
    """One rank's shard of an iterable corpus: sentences ``rank``, ``rank + world``, ...

    Restartable when ``sentences`` is.
    """

    def __init__(self, sentences: Iterable[list[str]], rank: int, world: int):
        self.sentences, self.rank, self.world = sentences, rank, world

    def __iter__(self) -> Iterator[list[str]]:
        return itertools.islice(self.sentences, self.rank, None, self.world)

    def __repr__(self) -> str:
        return f"RoundRobin({self.sentences!r}, rank={self.rank}, world={self.world})"


def vocabulary_part(
    scanned: ScannedCorpus, shard: Iterable[list[str]], rank: int, world: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """What rank ``rank`` contributes to :func:`merge_vocabularies` from its scanned ``shard``.

    Each word's first occurrence in the shard is placed in the whole corpus: shard sentence
    ``s`` is sentence ``s * world + rank`` of a :class:`RoundRobin` shard, and comes after
    every sentence of lower ranks in a byte-range shard.
    """
    sentence, position = scanned.first
    if isinstance(shard, RoundRobin):
        sentence = sentence * world + rank
    else:
        sentence = sentence + rank * _RANK_STRIDE
    return scanned.words, scanned.counts, sentence, position


def merge_vocabularies(
    parts: Sequence[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[list[str], np.ndarray]:
    """Merge the raw vocabularies of corpus shards into the whole corpus's.

    Parameters
    ----------
    parts : sequence of (words, counts, sentence, position)
        Per shard: its distinct words, their ``(W,)`` int64 counts, and where each first
        occurs: ``(W,)`` int64 global sentence numbers (any numbers that sort sentences in
        corpus order) and ``(W,)`` int64 token positions in that sentence.

    Returns
    -------
    (list of str, numpy.ndarray)
        Distinct words in order of first occurrence in the whole corpus (the order a single
        pass would have seen them in), and their summed int64 counts.
    """
    words = [word for part in parts for word in part[0]]
    counts, sentence, position = (np.concatenate([part[i] for part in parts]) for i in (1, 2, 3))
    order = np.lexsort((position, sentence))  # (W_all,) entries in corpus order
    index: dict[str, int] = {}
    merged = np.fromiter(
        (index.setdefault(words[i], len(index)) for i in order), np.int64, count=len(order)
    )
    totals = np.zeros(len(index), dtype=np.int64)
    np.add.at(totals, merged, counts[order])
    return list(index), totals


class Cluster(OneProcess):
    """This process's place among the ranks that train one model, and their collectives.

    It overrides the hooks of :class:`torchw2v.trainer.OneProcess`, which single-process
    training uses instead, so that a run on one process never enters this module.

    Attributes
    ----------
    rank, world : int
        This process's rank and the number of ranks.
    device : torch.device
        Where this rank trains (``cuda:LOCAL_RANK`` for a CUDA device without an index).
    policy : SyncPolicy
        Synchronisation interval and mode, collective timeout.
    """

    def __init__(self, rank: int, world: int, device: torch.device, policy: SyncPolicy):
        self.rank, self.world, self.device, self.policy = rank, world, device, policy

    @classmethod
    def connect(cls, distributed: bool | SyncPolicy, device: torch.device) -> Cluster:
        """Join the process group (creating it from ``torchrun``'s environment if needed).

        Raises
        ------
        ValueError
            ``distributed`` is set but no process group exists and the environment does not
            describe one (the script was not started by ``torchrun``).
        """
        policy = distributed if isinstance(distributed, SyncPolicy) else SyncPolicy()
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            _init_process_group(device, policy.timeout)
        cluster = cls(dist.get_rank(), dist.get_world_size(), device, policy)
        logger.info(
            "rank %i of %i on %s (%s), %s",
            cluster.rank,
            cluster.world,
            device,
            dist.get_backend(),
            policy,
        )
        return cluster

    # ------------------------------------------------------------------ corpus and vocabulary

    def shard(self, sentences: Iterable[list[str]]) -> Iterable[list[str]]:
        """This rank's part of a corpus: a byte range of a plain local file, else every
        ``world``-th sentence."""
        if self.world == 1:
            return sentences
        if isinstance(sentences, CorpusFile) and seekable(sentences.path):
            size = os.path.getsize(sentences.path)
            start, end = (size * r // self.world for r in (self.rank, self.rank + 1))
            return CorpusFile(sentences.path, start, end)
        return RoundRobin(sentences, self.rank, self.world)

    def merge_vocabulary(
        self, scanned: ScannedCorpus, shard: Iterable[list[str]]
    ) -> tuple[ScannedCorpus, int, int]:
        """The whole corpus's raw vocabulary, from every rank's scan of its ``shard``.

        Returns
        -------
        (ScannedCorpus, int, int)
            The whole corpus's words and counts (order of first occurrence); the whole
            corpus's sentences and raw words.
        """
        if self.world == 1:
            return scanned, scanned.sentences, scanned.raw_words
        parts: list = [None] * self.world
        with self._guard("merging the vocabulary"):
            dist.all_gather_object(parts, vocabulary_part(scanned, shard, self.rank, self.world))
        words, counts = merge_vocabularies(parts)
        sentences, raw_words = self._sum(np.array([scanned.sentences, scanned.raw_words]))
        merged = ScannedCorpus(words, counts, scanned.sentences, scanned.raw_words)
        return merged, int(sentences), int(raw_words)

    # ------------------------------------------------------------------ training

    def seed(self, seed: int) -> int:
        """This rank's engine seed: distinct random streams on every rank."""
        return seed + self.rank * 2**32

    def plan(self, corpus: StreamedCorpus) -> ChunkPlan | None:
        """Chunks in lockstep: the same number on every rank, about ``every_words / world``
        words each (a rank whose long sentences fill fewer ends with empty ones), with
        progress counted over all ranks. ``None`` (the trainer's own chunks) for one rank."""
        if self.world == 1:
            return None
        per_rank = max(1, self.policy.every_words // self.world)
        largest = int(self._max(np.array([corpus.tokens]))[0])
        chunks = max(1, math.ceil(largest / per_rank))
        bounds, done = corpus.plan(max(1, math.ceil(corpus.tokens / chunks)))
        bounds, done = (np.pad(a, (0, chunks + 1 - a.size), mode="edge") for a in (bounds, done))
        done = self._sum(done)  # (chunks + 1,) words of all ranks
        return ChunkPlan(bounds, done / max(int(done[-1]), 1))

    def share_start(self, start: Position | None) -> Position | None:
        """Rank 0's resume position (it alone reads checkpoints), for every rank.

        Other ranks' epoch totals restart from zero: the resumed totals are rank 0's.
        """
        if self.world == 1:
            return start
        shared = [start]
        with self._guard("sharing the resume position"):
            dist.broadcast_object_list(shared, src=0)
        start = shared[0]
        return Position(start.epoch, start.chunk) if start and self.rank else start

    def synchronizer(
        self,
        weights: Sequence[torch.Tensor],
        chunks_per_epoch: int,
        counts: Sequence[np.ndarray | None],
    ) -> Synchronizer | None:
        """The ``on_chunk_end`` hook that synchronises ``weights``; ``None`` for one rank.

        ``counts[i]`` is the corpus count of the word of each row of ``weights[i]``, or
        ``None`` for a matrix whose rows are no words (:class:`Synchronizer`).
        """
        if self.world == 1:
            return None
        return Synchronizer(self, weights, chunks_per_epoch, counts)

    def sum_report(self, report: EpochReport) -> EpochReport:
        """Add every rank's raw words, trained words, pairs and loss into ``report``."""
        if self.world == 1:
            return report
        stats = report.stats
        totals = np.array([report.raw_words, stats.words, stats.pairs, stats.loss])
        raw, words, pairs, loss = self._sum(totals)
        report.raw_words, stats.words, stats.pairs, stats.loss = (
            int(raw),
            int(words),
            int(pairs),
            float(loss),
        )
        return report

    # ------------------------------------------------------------------ collectives

    def all_reduce_(self, tensor: torch.Tensor, what: str, op=dist.ReduceOp.SUM) -> None:
        """All-reduce ``tensor`` in place; a failure names ``what`` was being done."""
        with self._guard(what):
            dist.all_reduce(tensor, op=op)

    def broadcast_(self, tensor: torch.Tensor, what: str) -> None:
        """Overwrite ``tensor`` with rank 0's."""
        with self._guard(what):
            dist.broadcast(tensor, src=0)

    def _sum(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, dist.ReduceOp.SUM)

    def _max(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: np.ndarray, op: dist.ReduceOp) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(values)).to(self.device)
        self.all_reduce_(tensor, "adding up counts", op)
        return tensor.cpu().numpy()

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn a failed collective into a :class:`RankFailure` that says what happened."""
        try:
            yield
        except RuntimeError as err:  # DistBackendError, DistNetworkError, timeouts
            raise RankFailure(
                f"rank {self.rank} of {self.world} stopped while {what}: another rank died, "
                f"stalled for over {self.policy.timeout:g}s or cannot be reached (look for "
                f"the first error in the other ranks' output) [{type(err).__name__}: {err}]"
            ) from err


@dataclass
class SendOrder:
    """Which rows of a matrix of words a synchronisation sends, and how it scales them.

    Attributes
    ----------
    rows : torch.Tensor
        ``(V,)`` int64: the matrix's rows, those sent most often first.
    ends : list of int
        A synchronisation at level ``t`` sends ``rows[: ends[t]]``: the rows sent every
        ``2 ** t``-th synchronisation or more often.
    scale : torch.Tensor
        ``(V,)``: the factor of each row's summed change (:func:`saturation_scale`), in the
        order of ``rows``.
    """

    rows: torch.Tensor
    ends: list[int]
    scale: torch.Tensor

    @classmethod
    def of(
        cls, counts: np.ndarray, policy: SyncPolicy, world: int, like: torch.Tensor
    ) -> SendOrder:
        """The send order of a matrix whose rows' words have corpus ``counts`` (``(V,)``);
        ``like`` gives the scale's dtype and device. ``"rows"`` mode sends every row."""
        occurrences = counts / max(counts.sum(), 1) * policy.every_words / world  # per rank
        levels = 0 if policy.mode == "rows" else policy.rare_every.bit_length() - 1
        with np.errstate(divide="ignore"):
            tier = np.ceil(np.log2(policy.frequent / occurrences)).clip(0, levels).astype(np.int64)
        order = np.argsort(tier, kind="stable")
        ends = np.searchsorted(tier[order], np.arange(levels + 1), side="right").tolist()
        between_sends = torch.from_numpy(occurrences[order] * 2.0 ** tier[order])
        scale = saturation_scale(between_sends, world, policy.saturation)
        return cls(torch.from_numpy(order).to(like.device), ends, scale.to(like))


class Synchronizer:
    """Called after every chunk on every rank: makes the ranks' weights one model again.

    At creation it gives every rank rank 0's weights (fresh, or resumed from a checkpoint).

    Parameters
    ----------
    cluster : Cluster
        The ranks and their policy.
    weights : sequence of torch.Tensor
        The ``(V, d)`` matrices to keep in sync (empty ones are skipped), updated in place.
    chunks_per_epoch : int
        After the epoch's last chunk every row is sent, and the epoch's synchronisations
        are logged.
    counts : sequence of (numpy.ndarray or None), optional
        Per matrix, the ``(V,)`` corpus count of the word of each of its rows (the input and
        negative-sampling vectors, in the vocabulary's order), which sets how often each
        row is sent and its :func:`saturation_scale` (:class:`SendOrder`); ``None`` for a
        matrix whose rows are no words (the Huffman nodes of ``syn1``), or for all of them
        when omitted: such a matrix is sent whole, each row averaged over the ranks that
        changed it.
    """

    def __init__(
        self,
        cluster: Cluster,
        weights: Sequence[torch.Tensor],
        chunks_per_epoch: int,
        counts: Sequence[np.ndarray | None] | None = None,
    ):
        self.cluster, self.chunks_per_epoch = cluster, chunks_per_epoch
        self.policy = policy = cluster.policy.for_world(cluster.world)
        counts = counts if counts is not None else [None] * len(weights)
        kept = [(w, c) for w, c in zip(weights, counts, strict=True) if w.numel()]
        self.weights = [w for w, _ in kept]
        for w in self.weights:
            cluster.broadcast_(w, "sharing rank 0's starting weights")
        keep_base = policy.mode != "average"
        self.bases = [w.clone() for w in self.weights] if keep_base else []
        self.orders = [
            None if c is None else SendOrder.of(c, policy, cluster.world, w) for w, c in kept
        ]
        self.levels = policy.rare_every.bit_length() - 1
        self.calls, self.seconds, self.rows_sent, self.bytes = 0, 0.0, 0.0, 0

    def __call__(self, position: Position) -> None:
        started = time.perf_counter()
        last = position.chunk == self.chunks_per_epoch
        level = self.levels if last else min(_trailing_zeros(position.chunk), self.levels)
        getattr(self, f"_{self.policy.mode}")(level)
        self.calls += 1
        self.seconds += time.perf_counter() - started
        if last:
            logger.info(
                "EPOCH %i: %i synchronisations (%s) took %.2fs, %.0f%% of rows sent, "
                "%i bytes reduced",
                position.epoch,
                self.calls,
                self.policy.mode,
                self.seconds,
                100 * self.rows_sent / self.calls,
                self.bytes,
            )
            self.calls, self.seconds, self.rows_sent, self.bytes = 0, 0.0, 0.0, 0

    def _reduce(self, tensor: torch.Tensor, what: str) -> None:
        self.cluster.all_reduce_(tensor, what)
        self.bytes += tensor.numel() * tensor.element_size()

    def _sent(self, rows: int, w: torch.Tensor) -> None:
        self.rows_sent += rows / max(len(w), 1) / len(self.weights)

    def _average(self, level: int) -> None:
        for w in self.weights:
            self._reduce(w, "averaging the weights")
            w.div_(self.cluster.world)
            self._sent(len(w), w)

    def _delta(self, level: int) -> None:
        """Send the rows due at ``level`` of the matrices of words in one all-reduce, and
        the other matrices whole."""
        due = []  # (matrix, its base, (R,) rows, (R,) their factors)
        for w, base, order in zip(self.weights, self.bases, self.orders):
            if order is None:
                self._whole_averaged(w, base)
            else:
                end = order.ends[level]
                due.append((w, base, order.rows[:end], order.scale[:end]))
        if not due:
            return
        summed = torch.cat([w[rows] - base[rows] for w, base, rows, _ in due])  # (R_all, d)
        self._reduce(summed, "adding up the ranks' updates")
        for (w, base, rows, scale), part in zip(due, summed.split([len(r) for *_, r, _ in due])):
            fresh = base[rows].addcmul_(part, scale[:, None])
            w.index_copy_(0, rows, fresh)
            base.index_copy_(0, rows, fresh)
            self._sent(len(rows), w)

    def _whole_averaged(self, w: torch.Tensor, base: torch.Tensor) -> None:
        w.sub_(base)  # w holds this rank's change ...
        scale = 1 / self._changers(w).clamp(min=1).to(w.dtype)
        self._reduce(w, "adding up the ranks' updates")  # ... then all ranks'
        w.mul_(scale[:, None]).add_(base)
        base.copy_(w)
        self._sent(len(w), w)

    def _rows(self, level: int) -> None:
        for w, base, order in zip(self.weights, self.bases, self.orders):
            change = w - base
            changers = self._changers(change)  # (V,)
            rows = changers.nonzero().squeeze(1)  # (R,)
            scale = 1 / changers[rows].to(w.dtype) if order is None else order.scale[rows]
            delta = change.index_select(0, rows)  # (R, d)
            self._reduce(delta, "adding up the ranks' updates")
            fresh = base.index_select(0, rows).addcmul_(delta, scale[:, None])
            w.index_copy_(0, rows, fresh)
            base.index_copy_(0, rows, fresh)
            self._sent(rows.numel(), w)

    def _changers(self, change: torch.Tensor) -> torch.Tensor:
        """``(V,)`` int32: how many ranks changed each row."""
        changers = change.ne(0).any(dim=1).to(torch.int32)
        self._reduce(changers, "counting the ranks that changed each row")
        return changers


def _trailing_zeros(n: int) -> int:
    """How many times 2 divides ``n`` (> 0)."""
    return (n & -n).bit_length() - 1


def saturation_scale(occurrences: torch.Tensor, world: int, saturation: float) -> torch.Tensor:
    """The factor of each row's summed change that makes ``world`` ranks move it as far as one
    process making all their updates in a row would.

    Between two synchronisations each rank moves a row some fraction ``p`` of the way to
    where its updates would settle it; the more often the row's word occurs, the closer to 1.
    Taken as ``p = 1 - exp(-occurrences / saturation)``. One process making the updates of
    all ranks one after the other covers ``1 - (1 - p) ** world`` of the way, so the sum of
    the ranks' changes is scaled by ``(1 - (1 - p) ** world) / (world * p)``: 1 for a rare
    word (the ranks' moves add up, as when a single rank moved it), ``1 / world`` for a
    frequent one (every rank moved it to the same place: the moves are averaged).

    Parameters
    ----------
    occurrences : torch.Tensor
        ``(V,)`` float64: how often each row's word occurs in the words one rank trains
        between two synchronisations.
    world : int
        The number of ranks.
    saturation : float
        Occurrences per rank that move a row ``1 - 1/e`` of the way (:class:`SyncPolicy`).

    Returns
    -------
    torch.Tensor
        ``(V,)`` float64 factors in ``[1 / world, 1]``.
    """
    p = -torch.expm1(-occurrences / saturation)  # (V,)
    linear = p < 1e-9  # where the ratio is 1 up to rounding
    scale = -torch.expm1(world * torch.log1p(-p.clamp(max=1 - 1e-12))) / (world * p)
    return torch.where(linear, torch.ones_like(p), scale)


def _init_process_group(device: torch.device, timeout: float) -> None:
    """Create the default process group from ``torchrun``'s environment variables."""
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(
            f"distributed=True, but no process group exists and {', '.join(missing)} "
            "not set: start the script with torchrun (e.g. 'torchrun --nproc_per_node 2 "
            "script.py'), or call torch.distributed.init_process_group first"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
