"""Training engines: the hot path, behind one small interface (see :mod:`.base`).

- ``"torch"``: vectorised torch ops, any device (:mod:`.torch_engine`).
- ``"compiled"``: a C++ op running Hogwild threads on CPU (:mod:`.compiled`).
- ``"auto"``: the compiled op on CPU when it builds, else the torch engine.
"""

from __future__ import annotations

import torch

from .base import ChunkStats, Engine, EngineConfig, SamplingTables
from .torch_engine import TorchEngine

ENGINES = ("auto", "torch", "compiled")

__all__ = [
    "ENGINES",
    "ChunkStats",
    "Engine",
    "EngineConfig",
    "SamplingTables",
    "create_engine",
    "resolve_device",
]


def create_engine(
    name: str,
    syn0: torch.Tensor,
    syn1neg: torch.Tensor,
    tables: SamplingTables,
    config: EngineConfig,
) -> Engine:
    """Build the engine called ``name`` for the device of ``syn0``.

    Raises
    ------
    ValueError
        ``name`` is unknown, or ``"compiled"`` was asked for on a non-CPU device.
    RuntimeError
        ``"compiled"`` was asked for and the C++ op cannot be built here.
    """
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {name!r}")
    on_cpu = syn0.device.type == "cpu"
    if name == "compiled" and not on_cpu:
        raise ValueError(f"the compiled engine runs on CPU only; got device {syn0.device}")
    if name == "torch" or not on_cpu:
        return TorchEngine(syn0, syn1neg, tables, config)
    from . import compiled

    if name == "compiled" or compiled.is_available():
        return compiled.CompiledEngine(syn0, syn1neg, tables, config)
    return TorchEngine(syn0, syn1neg, tables, config)


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
