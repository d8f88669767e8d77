"""One model trained across processes, GPUs and machines with ``torch.distributed``.

Launch with ``torchrun``: ``Word2Vec(..., distributed=True)`` (or the ``torchw2v train``
command, which goes distributed by itself when ``torchrun`` starts more than one process)
joins the process group that ``torchrun`` describes in the environment: gloo on CPU, NCCL on
CUDA, where rank ``r`` trains on ``cuda:LOCAL_RANK``.

- **Shards.** To count words, each rank reads its own part of the corpus. A plain local
  ``corpus_file`` is cut into byte ranges, one per rank (a line belongs to the range holding
  its first byte, as gensim's ``corpus_file`` mode splits work among its threads);
  compressed or remote files and iterables are dealt out sentence by sentence (sentence
  ``i`` to rank ``i % world``). To train, each rank reads its stripes of the corpus
  (:class:`~torchw2v.corpus.Stripes`: stripes ``rank``, ``rank + world``, ...).
- **Vocabulary.** Each rank counts its shard; the counts and each word's first occurrence
  are all-gathered and merged in corpus order, so every rank builds the vocabulary of the
  whole corpus, equal to gensim's (``max_vocab_size`` pruning, when set, prunes per rank).
- **Chunks in lockstep.** The ranks share how many sentences and tokens each stripe holds,
  so each rank knows where its sentences lie in the whole corpus: a sentence draws from the
  random stream and trains at the learning rate that one process gives it (both keyed by
  its place in the corpus, :mod:`torchw2v.trainer`). Every rank cuts each of its stripes
  into chunks and trains as many chunks per round of stripes as the others (padding with
  empty ones).
- **Shared weights.** Ranks that all run on one machine train one copy of the weights in
  shared memory (:meth:`Cluster.shared_weights`), as one process's threads do, in chunks of
  one process's size, and wait for each other only at epoch ends and around rank 0's
  checkpoints: the ranks train what one process with as many threads trains, sentence for
  sentence.
- **Machines.** On several machines, the ranks of each machine train one copy of the weights
  in shared memory, and each machine's lowest rank synchronises its copy with the other
  machines' (below, each machine as one rank) while the machine's other ranks train on
  (:class:`Machines`, :class:`~torchw2v.synchronizer.MachineStep`).
- **Synchronisation.** Otherwise, after every chunk (of ``SyncPolicy.every_words / world``
  words) the ranks add up the changes they made
  to the rows due (:mod:`torchw2v.synchronizer`): with 2 ranks, frequent words' rows at
  every synchronisation and rarer ones less often, the all-reduce running while the next
  chunk trains; every row at the end of each epoch. Between two synchronisations each rank trains
  on its own copy, as Hogwild threads do on shared rows. CBOW trains at raised rates
  (:meth:`Cluster.rates`).
- **Failures.** Collectives time out (``SyncPolicy.timeout``); a rank that dies or stalls
  makes the others raise :class:`RankFailure` instead of hanging.

Only rank 0 writes models and checkpoints (see :func:`is_writer` for your own outputs).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import mmap
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from . import shared_memory
from .corpus import STRIPE_BYTES, CorpusFile, ScannedCorpus, StreamedCorpus, Stripes, seekable
from .synchronizer import Lockstep, MachineStep, Synchronizer, SyncPolicy
from .trainer import CHUNK_WORDS, ChunkPlan, EpochReport, OneProcess, Position, Schedule, chunk_plan
from .weights import bind_tensors

logger = logging.getLogger(__name__)

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_RANK_STRIDE = 1 << 40  # sentence numbers of contiguous shards: rank * stride + local number


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


def stripe_counts(corpus: StreamedCorpus, chunk_words: int) -> np.ndarray:
    """``(4, P)`` int64: the number, sentences, tokens and chunks (of about ``chunk_words``
    tokens) of each stripe of ``corpus``, what a rank tells the others in :func:`placed_plan`."""
    parts = corpus.parts
    bounds, _ = corpus.plan(chunk_words)
    chunks = np.bincount(parts.holding(bounds[:-1]), minlength=parts.stripes.size)
    return np.stack((parts.stripes, np.diff(parts.sentences), np.diff(parts.tokens), chunks))


def placed_plan(
    corpus: StreamedCorpus, chunk_words: int, counts: Sequence[np.ndarray], world: int
) -> ChunkPlan:
    """The chunks of a rank's ``corpus`` (its :class:`~torchw2v.corpus.Stripes`) placed in
    the whole corpus, from every rank's :func:`stripe_counts`; each round of stripes (one
    per rank) padded with empty chunks to the most that any rank trains in it, so that
    every rank trains as many chunks."""
    table = np.concatenate(counts, axis=1)  # (4, K) every rank's stripes
    stripes = int(table[0].max()) + 1 if table.size else 0
    sentences, tokens, chunks = np.zeros((3, stripes), np.int64)
    sentences[table[0]], tokens[table[0]], chunks[table[0]] = table[1:]
    before = np.stack((np.cumsum(sentences) - sentences, np.cumsum(tokens) - tokens), 1)
    totals = int(sentences.sum()), int(tokens.sum())
    plan = chunk_plan(corpus, chunk_words, before[corpus.parts.stripes], totals)
    rounds = -(-stripes // world)
    most = np.pad(chunks, (0, rounds * world - stripes)).reshape(rounds, world).max(1)
    return padded(plan, corpus.parts.stripes // world, most)


def _warn_if_unbalanced(counts: Sequence[np.ndarray]) -> None:
    """Warn when, over several rounds of stripes, some rank's stripes hold under half the
    tokens of another's: a file of a few very long lines (a line belongs to the stripe of
    its first byte)."""
    tokens = [int(rank[2].sum()) for rank in counts]
    rounds = sum(rank.shape[1] for rank in counts) / len(counts)
    if rounds >= 2 and min(tokens) < max(tokens) / 2:
        logger.warning(
            "the ranks' stripes hold %s tokens: lines longer than a stripe (about %i bytes) "
            "go whole to one rank, and the others wait for it; split the corpus into shorter "
            "lines, or pass it as corpus_iterable (gensim's Text8Corpus for text8)",
            " / ".join(f"{t:,}" for t in tokens),
            STRIPE_BYTES,
        )


def padded(plan: ChunkPlan, part_rounds: np.ndarray, most: np.ndarray) -> ChunkPlan:
    """``plan`` with empty chunks after each round's, so that it has ``most[j]`` chunks in
    round ``j`` (``(R,)``); its parts are of rounds ``part_rounds`` (``(P,)``, ascending).
    An empty chunk is placed as the chunk before it, holding none of its sentences."""
    chunk_round = part_rounds[plan.part]  # (C,)
    mine = np.bincount(chunk_round, minlength=most.size)  # (R,)
    into_round = np.arange(chunk_round.size) - (np.cumsum(mine) - mine)[chunk_round]
    real = np.full(int(most.sum()), -1)
    real[(np.cumsum(most) - most)[chunk_round] + into_round] = np.arange(chunk_round.size)
    latest = np.maximum.accumulate(real) if real.size else real  # -1 before any chunk
    bounds = np.concatenate((plan.bounds[:1], plan.bounds[latest + 1]))
    if not chunk_round.size:  # no chunks to place empty ones as
        zeros = np.zeros(real.size, np.int64)
        return ChunkPlan(bounds, zeros, zeros / 1.0, zeros / 1.0, zeros, plan.sentences)
    source = np.maximum(latest, 0)
    fields = (plan.first, plan.start, plan.end, plan.part)
    return ChunkPlan(bounds, *(values[source] for values in fields), plan.sentences)


@dataclass(frozen=True)
class Machines:
    """The ranks grouped by machine, where the ranks of each machine train one copy of the
    weights in shared memory and the machines synchronise (``SyncPolicy(mode="shared")`` on
    several machines).

    Attributes
    ----------
    leader : int
        The rank that synchronises this rank's machine with the others: its lowest.
    group, leaders : torch.distributed.ProcessGroup
        This machine's ranks; every machine's leader.
    count : int
        How many machines.
    """

    leader: int
    group: Any
    leaders: Any
    count: int


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
        Synchronisation interval and mode, collective timeout, with the defaults for
        ``world`` ranks filled in (for as many ranks as machines with :attr:`machines`);
        the constructor takes it as the user gave it (``requested``).
    machines : Machines or None
        Set where the ranks run on several machines and those of each machine share one
        copy of the weights.
    """

    concurrent = False
    """Whether other processes train the weights while a synchronisation reads them."""

    def __init__(self, rank: int, world: int, device: torch.device, policy: SyncPolicy):
        self.rank, self.world, self.device = rank, world, device
        self.requested, self.policy = policy, policy.for_world(world)
        self.one_memory = False  # whether every rank can map rank 0's memory (one machine)
        self.machines: Machines | None = None
        self.shared = False  # training weights in shared memory (shared_weights)

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
        world = dist.get_world_size()
        cluster = cls(dist.get_rank(), world, device, policy)
        logger.info(
            "rank %i of %i on %s (%s), %s",
            cluster.rank,
            cluster.world,
            device,
            dist.get_backend(),
            policy,
        )
        cluster.one_memory = cluster._share_memory()
        return cluster

    # ------------------------------------------------------------------ corpus and vocabulary

    def shard(self, sentences: Iterable[list[str]], training: bool = False) -> Iterable[list[str]]:
        """This rank's part of a corpus: to count, a byte range of a plain local file, else
        every ``world``-th sentence; to train on, its :class:`~torchw2v.corpus.Stripes`."""
        if self.world == 1:
            return sentences
        if training:
            return Stripes(sentences, self.rank, self.world)
        if not (isinstance(sentences, CorpusFile) and seekable(sentences.path)):
            return RoundRobin(sentences, self.rank, self.world)
        size = os.path.getsize(sentences.path)
        start, end = (size * r // self.world for r in (self.rank, self.rank + 1))
        return CorpusFile(sentences.path, start, end)

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

    def total(self, count: int) -> int:
        """``count`` added up over the ranks (each rank passes its own)."""
        return count if self.world == 1 else int(self._sum(np.array([count]))[0])

    def plan(self, corpus: StreamedCorpus) -> ChunkPlan:
        """This rank's chunks, placed in the whole corpus from every rank's stripe counts:
        of :data:`~torchw2v.trainer.CHUNK_WORDS` for shared weights, else of about
        ``every_words / world``; each round of stripes (one per rank) padded with empty
        chunks to the most any rank trains in it."""
        if self.world == 1:
            return chunk_plan(corpus, CHUNK_WORDS)
        one_copy = self.shared and self.machines is None
        chunk_words = CHUNK_WORDS if one_copy else max(1, self.policy.every_words // self.world)
        gathered: list = [None] * self.world
        with self._guard("sharing the stripes' counts"):
            dist.all_gather_object(gathered, stripe_counts(corpus, chunk_words))
        if self.rank == 0:
            _warn_if_unbalanced(gathered)
        return placed_plan(corpus, chunk_words, gathered, self.world)

    @contextmanager
    def shared_weights(self, model: Any) -> Iterator[None]:
        """Train ``model``'s weights meanwhile in one copy that every rank maps
        (``SyncPolicy(mode="shared")``, :mod:`torchw2v.shared_memory`), starting from rank
        0's; ``wv.vectors``, ``syn1neg`` and ``syn1`` get the trained weights afterwards.

        Where some rank cannot map rank 0's copy, and on CUDA devices, every rank trains its
        own copy, synchronised by ``"delta"`` (:class:`Synchronizer`).
        """
        own = (model.wv.vectors, model.syn1neg, model.syn1)
        copies = self._map_shared(own)
        if copies is None:
            yield
            return
        self.shared = True
        model.wv.vectors, model.syn1neg, model.syn1 = copies
        bind_tensors(model)
        try:
            yield
        finally:
            self.shared = False
            for mine, trained in zip(own, copies, strict=True):
                np.copyto(mine, trained)
            model.wv.vectors, model.syn1neg, model.syn1 = own
            bind_tensors(model)

    def _map_shared(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """Views of rank 0's copy of ``arrays`` in shared memory, mapped by every rank; or
        ``None`` where the ranks cannot share it."""
        if not self.one_memory and self.machines is None:
            return None
        mapped, why = self._mapped_by_all(arrays, self.machines)
        if mapped is None:
            logger.warning("no shared weights (%s): synchronising by 'delta'", why)
            self.machines, self.policy = None, self.requested.for_world(self.world)
            return None
        where = "" if self.machines is None else f" on each of {self.machines.count} machines"
        logger.info(
            "%s ranks train one copy of the weights in shared memory%s (%.1f MB)",
            self.world if self.machines is None else "the",
            where,
            len(mapped) / 2**20,
        )
        return shared_memory.views(mapped, arrays)

    def _share_memory(self) -> bool:
        """Whether the ranks are to train shared weights on one machine:
        ``SyncPolicy(mode="shared")`` on CPU, and every rank can map memory that rank 0
        shares. Where they run on several machines and those of each can share their
        leader's memory, sets :attr:`machines` (and ``policy``'s defaults for as many ranks
        as machines) instead."""
        if self.world == 1 or self.policy.mode != "shared":
            return False
        if self.device.type != "cpu":
            why = f"the weights are on {self.device.type} devices"
        else:
            mapped, why = self._mapped_by_all([])
            if mapped is not None:
                return True
            self.machines = self._machines_sharing_memory()
            if self.machines is not None:
                self.policy = self.requested.for_world(self.machines.count)
                logger.info(
                    "%i machines: the ranks of each train one copy of the weights in shared "
                    "memory, and its lowest rank synchronises it with the others by 'delta'",
                    self.machines.count,
                )
                return False
        logger.info("no shared weights (%s): synchronising by 'delta'", why)
        return False

    def _machines_sharing_memory(self) -> Machines | None:
        """The ranks grouped by host name, where some host runs several and each rank can
        map its machine's lowest rank's memory; else ``None``."""
        hosts: list = [None] * self.world
        with self._guard("sharing the host names"):
            dist.all_gather_object(hosts, socket.gethostname())
        ranks = [[r for r, h in enumerate(hosts) if h == host] for host in dict.fromkeys(hosts)]
        if max(map(len, ranks)) == 1:
            return None
        with self._guard("grouping the ranks by machine"):
            group, _ = dist.new_subgroups_by_enumeration(ranks)
            leaders = dist.new_group([members[0] for members in ranks])
        mine = next(members for members in ranks if self.rank in members)
        found = Machines(mine[0], group, leaders, len(ranks))
        mapped, why = self._mapped_by_all([], found)
        if mapped is None:
            logger.info("no shared weights on each machine (%s)", why)
            return None
        return found

    def _mapped_by_all(
        self, arrays: Sequence[np.ndarray], machines: Machines | None = None
    ) -> tuple[mmap.mmap | None, str]:
        """Rank 0's copy of ``arrays`` in shared memory (:func:`shared_memory.offer`), once
        every rank has mapped it (with ``machines``, each machine's leader's copy, mapped by
        that machine's ranks); else ``None``, and why."""
        leader = 0 if machines is None else machines.leader
        group = None if machines is None else machines.group
        made = shared_memory.offer(arrays) if self.rank == leader else None
        offered = [made[0] if isinstance(made, tuple) else None]
        try:
            with self._guard("offering the weights in shared memory"):
                dist.broadcast_object_list(offered, src=leader, group=group)
            if self.rank == leader:
                mapped = made[1] if isinstance(made, tuple) else None
            else:
                mapped = shared_memory.attach(offered[0]) if offered[0] else None
            everyone = bool(self._min(np.array([mapped is not None]))[0])
        finally:
            if self.rank == leader and offered[0]:
                os.close(offered[0].fd)  # every rank has mapped it, or will not
        if isinstance(made, str):
            return None, made
        if offered[0] is None:
            return None, f"rank {leader} could not share its memory"
        if not everyone:
            return None, f"some rank cannot open rank {leader}'s memory: another machine?"
        return mapped, ""

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

    def rates(self, schedule: Schedule, sg: bool) -> Schedule:
        """CBOW's learning rates times ``policy.cbow_alpha`` on several ranks that
        synchronise copies of their own (:class:`SyncPolicy`); ``schedule`` itself
        otherwise, and for ranks training a shared copy, on one machine or one per machine
        (call it inside :meth:`shared_weights`)."""
        factor = self.policy.cbow_alpha
        if self.world == 1 or sg or factor == 1 or self.shared:
            return schedule
        logger.info("CBOW on %i ranks: learning rates %g times %s", self.world, factor, schedule)
        start, end = schedule.start_alpha * factor, schedule.end_alpha * factor
        return replace(schedule, start_alpha=start, end_alpha=end)

    def chunk_end(
        self,
        weights: Sequence[torch.Tensor],
        chunks_per_epoch: int,
        counts: Sequence[np.ndarray | None],
        saver: Callable[[Position], None] | None,
    ) -> Callable[[Position], None] | None:
        """The ``on_chunk_end`` hook: keeps the ranks' ``weights`` in step, then calls
        ``saver`` (rank 0's checkpoints); ``saver`` alone for one rank.

        ``counts[i]`` is the corpus count of the word of each row of ``weights[i]``, or
        ``None`` for a matrix whose rows are no words (:class:`Synchronizer`).
        """
        if self.world == 1:
            return saver
        if self.shared:
            checkpoints = bool(self._max(np.array([saver is not None]))[0])
            if self.machines is None:  # the ranks wait only around rank 0's checkpoints
                return Lockstep(self, chunks_per_epoch, saver) if checkpoints else None
            leads = self.rank == self.machines.leader
            sync = Synchronizer(Leaders(self), weights, chunks_per_epoch, counts) if leads else None
            self.barrier("waiting for rank 0's starting weights", self.machines.group)
            return MachineStep(self, sync, chunks_per_epoch, saver, checkpoints)
        sync = Synchronizer(self, weights, chunks_per_epoch, counts)
        if saver is None:
            return sync

        def synchronise_then_save(position: Position) -> None:
            sync(position)
            saver(position)

        return synchronise_then_save

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

    def wait_for_ranks(self) -> None:
        """With shared weights, wait for every rank (so that callbacks see no rank training)."""
        if self.shared:
            self.barrier("waiting for the other ranks' callbacks")

    # ------------------------------------------------------------------ collectives

    def all_reduce_(
        self,
        tensor: torch.Tensor,
        what: str,
        op=dist.ReduceOp.SUM,
        wait: bool = True,
        group: Any = None,
    ) -> Callable[[], None]:
        """All-reduce ``tensor`` in place over ``group`` (default: every rank); a failure
        names ``what`` was being done.

        With ``wait=False`` the all-reduce runs in the background: ``tensor`` holds the
        result once the returned function (which waits for it) has been called.
        """
        with self._guard(what):
            work = dist.all_reduce(tensor, op=op, group=group, async_op=not wait)

        def finish() -> None:
            if work is not None:
                with self._guard(what):
                    work.wait()

        return finish

    def broadcast_(self, tensor: torch.Tensor, what: str, group: Any = None) -> None:
        """Overwrite ``tensor`` with rank 0's (rank 0 is in ``group``)."""
        with self._guard(what):
            dist.broadcast(tensor, src=0, group=group)

    def _sum(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, dist.ReduceOp.SUM)

    def _max(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, dist.ReduceOp.MAX)

    def _min(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, dist.ReduceOp.MIN)

    def barrier(self, what: str, group: Any = None) -> None:
        """Wait until every rank of ``group`` (default: all) gets here; a failure names
        ``what`` was being done."""
        with self._guard(what):
            dist.barrier(group=group)

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


class Leaders:
    """Every machine's leader, as the ranks whose weights a :class:`Synchronizer` keeps one
    model (:attr:`Cluster.machines`): the machines' shared copies are its ranks' copies,
    trained by the machines' other ranks meanwhile."""

    concurrent = True

    def __init__(self, cluster: Cluster):
        self.cluster, self.world, self.policy = cluster, cluster.machines.count, cluster.policy

    def all_reduce_(
        self, tensor: torch.Tensor, what: str, op=dist.ReduceOp.SUM, wait: bool = True
    ) -> Callable[[], None]:
        """:meth:`Cluster.all_reduce_` among the leaders."""
        return self.cluster.all_reduce_(tensor, what, op, wait, self.cluster.machines.leaders)

    def broadcast_(self, tensor: torch.Tensor, what: str) -> None:
        """:meth:`Cluster.broadcast_` among the leaders."""
        self.cluster.broadcast_(tensor, what, self.cluster.machines.leaders)


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
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    """Destroy the process group torchw2v created, at exit while the interpreter is whole.

    Left to interpreter teardown, gloo's worker threads may still hold finished works and
    their tensors; freeing those then can abort the process ("terminate called without an
    active exception", pytorch/pytorch#190489), which torchrun reports as a failed rank.
    """
    if dist.is_initialized():
        dist.destroy_process_group()
