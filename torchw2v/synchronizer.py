"""Keeping the ranks' weights one model: how (:class:`SyncPolicy`) and the hook that does it
after every chunk (:class:`Synchronizer`), used by :class:`torchw2v.distributed.Cluster`.

Ranks on one machine train one copy of the weights in shared memory (``"shared"``, the
default) and wait for each other only at epoch ends and around rank 0's checkpoints
(:class:`Lockstep`). Otherwise each rank trains its own copy between two synchronisations;
a synchronisation adds up the changes the ranks made to the rows due, each row's sum scaled
by :func:`saturation_scale` so that it moves as far as one process making all the ranks'
updates would move it; with 2 ranks (``SyncPolicy.overlap``) the all-reduce runs while the
next chunk trains. On several machines the two combine: each machine's ranks train one
copy, and its lowest rank synchronises it with the other machines' (:class:`MachineStep`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .distributed import Cluster
    from .trainer import Position

logger = logging.getLogger(__name__)

SYNC_MODES = ("shared", "delta", "rows", "average")
RARE_WORDS = 2**21  # words between two sends of the rarest rows at most, with 2 ranks
PAIR_WORDS = 2**16  # words between two synchronisations with 2 ranks
RANK_WORDS = 2**11  # per rank between two synchronisations with more


@dataclass(frozen=True)
class SyncPolicy:
    """How the ranks keep one model, and how long they wait for each other.

    Parameters
    ----------
    every_words : int, optional
        Corpus words (all ranks together) trained between two synchronisations (not with
        ``"shared"`` weights: there each rank trains chunks of up to 262,144 words, one
        process's chunk, within its stripes). Default
        65,536 with 2 ranks, 2,048 per rank with more (8,192 with 4, 16,384 with 8): 2 ranks
        score as one process at 65,536 (over 3 seeds) and spend 0.2-0.4 s less per 12M words
        than at 32,768; with 8 ranks 32,768 lost 0.03-0.05 WS353 against one process and
        16,384 kept it; with 4, 16,384 lost 0.019-0.025 on 4M tokens and 8,192 0.011
        (``benchmarks/RESULTS.md``).
    mode : {"shared", "delta", "rows", "average"}
        ``"shared"``: ranks that all run on one machine train one copy of the weights in
        shared memory (:mod:`torchw2v.shared_memory`), as one process's threads train one
        copy (Hogwild): no weights are sent, and they score as one process does. On several
        machines, the ranks of each machine train one copy, and the machines synchronise
        their copies by ``"delta"`` (with this policy's defaults for as many ranks as
        machines), each machine's lowest rank sending while the others train on. Where
        ranks cannot map their machine's copy (one rank per machine, ranks in other
        containers, too little memory, a CUDA device), ``"delta"`` among all ranks, logged.
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
        ``2**21`` words of all ranks at most (32 at the default ``every_words``, the interval
        measured); 1 with more ranks, where sending rows less often lost analogy points
        (``benchmarks/RESULTS.md``).
    overlap : bool, optional
        ``"delta"``: run each synchronisation's all-reduce while the next chunk trains, and
        apply its sum at the next synchronisation (each rank's own change of the rows sent
        is replaced by the ranks' scaled sum, what it trained since is kept); the epoch's
        last one is waited for, so every rank ends each epoch with the same model. A rank
        that finishes its chunk first goes on instead of waiting for the others (a checkpoint
        written meanwhile holds rank 0's weights without the sum in flight). Default: on
        with 2 ranks, where it keeps the scores and hides the all-reduce's latency; off with
        more, where it lost the model with 8 (``benchmarks/RESULTS.md``).
    cbow_alpha : float
        CBOW on several ranks that synchronise (not ``"shared"``) trains at this times the
        learning rates (start and end; skip-gram at the rates given); 1 keeps the rates. At
        the one-process rates, 2 and 4 ranks synchronising by ``"delta"`` lost 0.03-0.04
        WS353 and up to 1 analogy point on 4M tokens whatever the interval, the rows sent or
        their scale, and 1.3 recovered it (``benchmarks/RESULTS.md``). Ranks training
        ``"shared"`` weights keep the rates: there 2 ranks scored as one process (4M
        tokens, seeds 1-3: -0.0 analogy points, -0.012 WS353), and 1.3 times the rates
        would put them above it only as it puts one process above itself (+1.2 points).
        So do ranks sharing one copy per machine: at 1.3 times the rates, 2 and 4
        machines of 2 and 4 ranks scored 1.1-1.9 points and 0.03-0.04 WS353 above one
        process, at the rates given within 0.5 points and 0.011.
    """

    every_words: int | None = None
    mode: str = "shared"
    timeout: float = 600.0
    saturation: float | None = None
    frequent: float = 8.0
    rare_every: int | None = None
    overlap: bool | None = None
    cbow_alpha: float = 1.3

    def __post_init__(self) -> None:
        bad_saturation = self.saturation is not None and not self.saturation > 0
        bad_words = self.every_words is not None and self.every_words < 1
        if bad_words or self.timeout <= 0 or bad_saturation:
            raise ValueError(
                f"SyncPolicy needs every_words >= 1, timeout > 0 and saturation > 0, got "
                f"every_words={self.every_words}, timeout={self.timeout}, "
                f"saturation={self.saturation}"
            )
        rare = 1 if self.rare_every is None else self.rare_every
        if not self.frequent > 0 or not self.cbow_alpha > 0 or rare < 1 or rare & (rare - 1):
            raise ValueError(
                f"SyncPolicy needs frequent > 0, cbow_alpha > 0 and rare_every a power of two, "
                f"got frequent={self.frequent}, cbow_alpha={self.cbow_alpha}, "
                f"rare_every={self.rare_every}"
            )
        if self.mode not in SYNC_MODES:
            raise ValueError(f"SyncPolicy mode must be one of {SYNC_MODES}, got {self.mode!r}")

    def for_world(self, world: int) -> SyncPolicy:
        """This policy with the defaults for ``world`` ranks filled in."""
        every_words = self.every_words or (PAIR_WORDS if world <= 2 else RANK_WORDS * world)
        saturation = self.saturation or 512 / world
        longest = max(1, RARE_WORDS // int(every_words)).bit_length() - 1
        rare_every = self.rare_every or (1 << longest if world <= 2 else 1)
        overlap = world <= 2 if self.overlap is None else self.overlap
        return replace(
            self,
            every_words=every_words,
            saturation=saturation,
            rare_every=rare_every,
            overlap=overlap,
        )


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
    due : list of (slice or torch.Tensor)
        ``rows[: ends[t]]`` as an index of the matrix: a slice where those are its first
        rows (a vocabulary sorted by frequency), which reads and writes them in place
        instead of gathering and scattering them.
    """

    rows: torch.Tensor
    ends: list[int]
    scale: torch.Tensor
    due: list[slice | torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        moved = (self.rows != torch.arange(len(self.rows), device=self.rows.device)).nonzero()
        in_place = int(moved[0, 0]) if len(moved) else len(self.rows)  # rows[:in_place] = 0..
        self.due = [slice(0, end) if end <= in_place else self.rows[:end] for end in self.ends]

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
        self.concurrent = cluster.concurrent  # other ranks train the weights meanwhile
        policy = cluster.policy.for_world(cluster.world)
        if policy.mode == "shared":  # ranks that cannot share their weights
            policy = replace(policy, mode="delta")
        self.policy = policy
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
        self.pending: tuple | None = None  # (wait, due, summed, own) of a running all-reduce
        # the changes sent and, with overlap, this rank's own: allocated once (a fresh
        # buffer of every row at each epoch's end costs more in page faults than in copies)
        words = [w for w, order in zip(self.weights, self.orders) if order is not None]
        size = (sum(len(w) for w in words), words[0].shape[1]) if words else (0, 0)
        self.buffers = [torch.empty(size, dtype=w.dtype, device=w.device) for w in words[:1]]
        if words and policy.mode == "delta" and (policy.overlap or self.concurrent):
            self.buffers.append(torch.empty_like(self.buffers[0]))
        self.calls, self.seconds, self.rows_sent, self.bytes = 0, 0.0, 0.0, 0

    def __call__(self, position: Position) -> None:
        started = time.perf_counter()
        last = position.chunk == self.chunks_per_epoch
        level = self.levels if last else min(_trailing_zeros(position.chunk), self.levels)
        getattr(self, f"_{self.policy.mode}")(level, last)
        self.calls += 1
        self.seconds += time.perf_counter() - started
        if last:
            rows = 100 * self.rows_sent / self.calls
            _log_epoch(position.epoch, self.calls, self.policy.mode, self.seconds, rows, self.bytes)
            self.calls, self.seconds, self.rows_sent, self.bytes = 0, 0.0, 0.0, 0

    def _reduce(self, tensor: torch.Tensor, what: str, wait: bool = True) -> Callable[[], None]:
        self.bytes += tensor.numel() * tensor.element_size()
        return self.cluster.all_reduce_(tensor, what, wait=wait)

    def _sent(self, rows: int, w: torch.Tensor) -> None:
        self.rows_sent += rows / max(len(w), 1) / len(self.weights)

    def _average(self, level: int, last: bool) -> None:
        for w in self.weights:
            self._reduce(w, "averaging the weights")
            w.div_(self.cluster.world)
            self._sent(len(w), w)

    def _delta(self, level: int, last: bool) -> None:
        """Send the rows due at ``level`` of the matrices of words in one all-reduce, and
        the other matrices whole; with ``policy.overlap``, unless ``last``, leave the
        all-reduce running (:meth:`_apply_pending` applies it). With other ranks training
        the weights meanwhile (``concurrent``), unless ``last``, add the scaled sum less this
        rank's change, so that what they trained since is kept."""
        self._apply_pending()
        due = []  # (matrix, its base, R rows (slice or (R,) index), (R,) their factors)
        for w, base, order in zip(self.weights, self.bases, self.orders):
            if order is None:
                self._whole_averaged(w, base, self.concurrent and not last)
            else:
                due.append((w, base, order.due[level], order.scale[: order.ends[level]]))
        if not due:
            return
        sizes = [len(scale) for *_, scale in due]
        summed = self.buffers[0][: sum(sizes)]  # (R_all, d)
        for (w, base, rows, _), part in zip(due, summed.split(sizes)):
            torch.sub(w[rows], base[rows], out=part)
        if (self.policy.overlap or self.concurrent) and not last:
            own = self.buffers[1][: len(summed)].copy_(summed)
            wait = self._reduce(summed, "adding up the ranks' updates", wait=False)
            self.pending = (wait, due, summed, own)
            if not self.policy.overlap:
                self._apply_pending()
            return
        self._reduce(summed, "adding up the ranks' updates")
        for (w, base, rows, scale), part in zip(due, summed.split(sizes)):
            self._apply(w, base, rows, part, scale)

    def _apply_pending(self) -> None:
        """Wait for the running all-reduce and apply its sum: the base of its rows moves by
        the scaled sum, and so does the matrix, less this rank's change in the sum (what
        this rank trained since it was sent is kept)."""
        if self.pending is None:
            return
        wait, due, summed, own = self.pending
        self.pending = None
        wait()
        sizes = [len(scale) for *_, scale in due]
        for (w, base, rows, scale), part, mine in zip(due, summed.split(sizes), own.split(sizes)):
            step = part.mul_(scale[:, None])
            _add_rows(base, rows, step)
            _add_rows(w, rows, step.sub_(mine))
            self._sent(len(part), w)

    def _whole_averaged(self, w: torch.Tensor, base: torch.Tensor, concurrent: bool) -> None:
        """Every row of ``w`` moves by the mean change of the ranks that changed it; with
        ``concurrent`` training meanwhile, added to what it holds by then."""
        change = w - base if concurrent else w.sub_(base)  # this rank's change ...
        own = change.clone() if concurrent else None
        scale = 1 / self._changers(change).clamp(min=1).to(w.dtype)
        self._reduce(change, "adding up the ranks' updates")  # ... then all ranks'
        base.add_(change.mul_(scale[:, None]))
        if concurrent:
            w.add_(change.sub_(own))
        else:
            w.copy_(base)
        self._sent(len(w), w)

    def _rows(self, level: int, last: bool) -> None:
        for w, base, order in zip(self.weights, self.bases, self.orders):
            change = w - base
            changers = self._changers(change)  # (V,)
            rows = changers.nonzero().squeeze(1)  # (R,)
            scale = 1 / changers[rows].to(w.dtype) if order is None else order.scale[rows]
            delta = change.index_select(0, rows)  # (R, d)
            self._reduce(delta, "adding up the ranks' updates")
            self._apply(w, base, rows, delta, scale)

    def _apply(
        self,
        w: torch.Tensor,
        base: torch.Tensor,
        rows: slice | torch.Tensor,
        summed: torch.Tensor,
        scale: torch.Tensor,
    ) -> None:
        """Rows ``rows`` (a slice or an ``(R,)`` index) of ``w`` and of its base become the
        base plus the ranks' ``(R, d)`` summed change scaled by ``(R,)`` ``scale``."""
        _add_rows(base, rows, summed.mul_(scale[:, None]))
        w[rows] = base[rows]
        self._sent(len(summed), w)

    def _changers(self, change: torch.Tensor) -> torch.Tensor:
        """``(V,)`` int32: how many ranks changed each row."""
        changers = change.ne(0).any(dim=1).to(torch.int32)
        self._reduce(changers, "counting the ranks that changed each row")
        return changers


class Lockstep:
    """Called after every chunk on every rank training ``"shared"`` weights while rank 0
    writes checkpoints: the ranks wait for each other, then for rank 0's checkpoint
    (``saver``, which writes one every so many seconds), so that a checkpoint holds
    every rank's chunks up to its position and none after. Logs the epoch's waits as
    :class:`Synchronizer` logs its synchronisations (no rows are sent).
    """

    def __init__(
        self, cluster: Cluster, chunks_per_epoch: int, saver: Callable[[Position], None] | None
    ):
        self.cluster, self.chunks_per_epoch, self.saver = cluster, chunks_per_epoch, saver
        self.calls, self.seconds = 0, 0.0

    def __call__(self, position: Position) -> None:
        started = time.perf_counter()
        _wait_for_checkpoint(self.cluster, self.saver, position)
        self.calls += 1
        self.seconds += time.perf_counter() - started
        if position.chunk == self.chunks_per_epoch:
            _log_epoch(position.epoch, self.calls, "shared", self.seconds, 0.0, 0)
            self.calls, self.seconds = 0, 0.0


class MachineStep:
    """Called after every chunk on every rank where the ranks of each machine train one
    shared copy (:attr:`torchw2v.distributed.Cluster.machines`): a machine's ranks wait for
    each other, then its leader synchronises the copies (``sync``, a :class:`Synchronizer`
    among the leaders) while the machine's other ranks train on. So no rank gets more than
    a chunk ahead of the synchronisations (on 2 cores posing as 4 machines of 2 ranks,
    ranks left to run ahead while their leaders synchronised lost 2.6 analogy points). At
    the end of each epoch they also wait for the machines' sum, so that every rank ends the
    epoch with the same model. With ``checkpoints``, every rank waits for rank 0's ``saver``
    after every chunk, as :class:`Lockstep` does.
    """

    def __init__(
        self,
        cluster: Cluster,
        sync: Synchronizer | None,
        chunks_per_epoch: int,
        saver: Callable[[Position], None] | None,
        checkpoints: bool,
    ):
        self.cluster, self.sync, self.chunks_per_epoch = cluster, sync, chunks_per_epoch
        self.saver, self.checkpoints = saver, checkpoints

    def __call__(self, position: Position) -> None:
        machine = self.cluster.machines.group
        self.cluster.barrier("finishing a chunk on this machine", machine)
        if self.sync is not None:
            self.sync(position)
        if position.chunk == self.chunks_per_epoch:
            self.cluster.barrier("waiting for the machines' epoch-end sum", machine)
        if self.checkpoints:
            _wait_for_checkpoint(self.cluster, self.saver, position)


def _wait_for_checkpoint(
    cluster: Cluster, saver: Callable[[Position], None] | None, position: Position
) -> None:
    """Every rank finishes its chunk, then waits while rank 0's ``saver`` (``None`` on the
    others) writes its checkpoint: it holds every rank's chunks up to ``position``."""
    cluster.barrier("finishing a chunk")
    if saver is not None:
        saver(position)
    cluster.barrier("waiting for rank 0's checkpoint")


def _log_epoch(epoch: int, calls: int, mode: str, seconds: float, rows: float, sent: int) -> None:
    """Log an epoch's synchronisations (``benchmarks/bench_distributed.py`` reads the line)."""
    logger.info(
        "EPOCH %i: %i synchronisations (%s) took %.2fs, %.0f%% of rows sent, %i bytes reduced",
        epoch,
        calls,
        mode,
        seconds,
        rows,
        sent,
    )


def _add_rows(w: torch.Tensor, rows: slice | torch.Tensor, values: torch.Tensor) -> None:
    """``w[rows] += values``, in place where ``rows`` is a slice."""
    if isinstance(rows, slice):
        w[rows].add_(values)
    else:
        w.index_add_(0, rows, values)


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
