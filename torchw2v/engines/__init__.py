"""Training engines: the hot path, behind one small interface (see :mod:`.base`).

- ``"torch"``: vectorised torch ops, any device (:mod:`.torch_engine`).
- ``"compiled"``: the fast engine of the device: on CPU a C++ op running Hogwild threads
  (:mod:`.compiled`); on CUDA a fused Triton kernel launched over each chunk
  (:mod:`.triton_engine`). Both train every objective: skip-gram or CBOW with negative
  sampling, hierarchical softmax or both.
- ``"auto"``: ``"compiled"`` when it is available for the device and the settings, else
  ``"torch"`` (with one warning giving the reason when the compiled engine cannot be used).

Setting the environment variable ``TORCHW2V_DISABLE_COMPILED`` (to anything but ``0``)
turns off both compiled engines. ``import torchw2v`` never imports triton: it is imported
the first time an engine is chosen for a CUDA device.
"""

from __future__ import annotations

import functools
import logging
import os

import torch

from .base import ChunkStats, Engine, EngineConfig, EngineWeights, SamplingTables
from .torch_engine import TorchEngine

logger = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "compiled")

__all__ = [
    "ENGINES",
    "ChunkStats",
    "Engine",
    "EngineConfig",
    "EngineWeights",
    "SamplingTables",
    "choose_engine",
    "create_engine",
    "resolve_device",
]


def create_engine(
    name: str, weights: EngineWeights, tables: SamplingTables, config: EngineConfig
) -> Engine:
    """Build the engine called ``name`` for the weights' device (see :func:`choose_engine`).

    Raises
    ------
    ValueError
        ``name`` is unknown, or ``"compiled"`` was asked for where no compiled engine trains
        these settings on this device.
    RuntimeError
        ``"compiled"`` was asked for and the C++ op cannot be built (CPU), or triton cannot
        be imported (CUDA).
    """
    kind = choose_engine(name, weights.syn0.device)
    if kind == "triton":
        from .triton_engine import TritonEngine

        return TritonEngine(weights, tables, config)
    if kind == "compiled":
        from . import compiled

        return compiled.CompiledEngine(weights, tables, config)
    return TorchEngine(weights, tables, config)


def choose_engine(name: str, device: torch.device) -> str:
    """Which engine ``name`` means on ``device``: ``"torch"``, ``"compiled"`` or ``"triton"``.

    On CPU, ``"compiled"`` is the C++ op (``"auto"`` takes it when it builds). On CUDA it is
    the fused Triton kernel, which trains every objective (skip-gram or CBOW; negative
    sampling, hierarchical softmax or both); ``"auto"`` takes it when triton imports, and
    otherwise falls back to the torch engine (with one warning naming the reason when triton
    is missing or disabled).

    Parameters
    ----------
    name : {"auto", "torch", "compiled"}
        The engine asked for.
    device : torch.device
        Where the tensors live.

    Raises
    ------
    ValueError
        ``name`` is unknown, or ``"compiled"`` on a device other than CPU and CUDA.
    RuntimeError
        ``"compiled"`` on CUDA where triton cannot be imported or is disabled.
    """
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {name!r}")
    if name == "torch":
        return "torch"
    if device.type == "cpu":
        from . import compiled

        return "compiled" if name == "compiled" or compiled.is_available() else "torch"
    if device.type != "cuda":
        if name == "compiled":
            raise ValueError(f"the compiled engines run on CPU or CUDA; got device {device}")
        return "torch"
    reason = triton_unavailable_reason()
    if reason is None:
        return "triton"
    if name == "compiled":
        raise RuntimeError(
            f"engine='compiled' on {device} runs a Triton kernel, but {reason}; install triton "
            "(CUDA builds of torch bring it) or pass engine='torch'"
        )
    _warn_triton_fallback(reason)
    return "torch"


@functools.cache
def triton_unavailable_reason() -> str | None:
    """Why the Triton engine cannot run here, or ``None`` when it can. Never raises.

    Imports triton on the first call (only then); the answer is kept for the process.
    """
    from .compiled import DISABLE_ENV

    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return f"it is disabled by the environment variable {DISABLE_ENV}"
    try:
        import triton  # noqa: F401
    except Exception as err:  # ImportError, or a broken installation
        return f"triton cannot be imported ({type(err).__name__}: {err})"
    return None


@functools.cache
def _warn_triton_fallback(reason: str) -> None:
    logger.warning(
        "torchw2v: fused GPU engine unavailable (%s); falling back to the vectorised torch "
        "engine, which is several times slower",
        reason,
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to train on: ``device`` checked, or CUDA when available, else CPU.

    Raises
    ------
    ValueError
        The device string does not parse, or names a CUDA device this machine lacks.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device {device!r} is not a torch device ({err}); use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was asked for but CUDA is not available here; "
                "use device='cpu' (or install a CUDA build of torch on a machine with a GPU)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda[:N]'")
    return device
