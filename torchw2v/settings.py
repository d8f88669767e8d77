"""The model's settings: which are saved with it, and the checks of their types and ranges.

Every check takes what gensim takes (numpy numbers and bools too) and stores plain Python
numbers, so that model files stay JSON; a wrong type is a ``TypeError``, a value out of range
a ``ValueError``, each naming the setting, its value and what is accepted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .engines import ENGINES
from .engines.compiled import MAX_NEGATIVE, MAX_WORKERS

# Settings saved with a model and restored by ``load``; everything else is derived state.
SETTINGS = (
    "vector_size",
    "alpha",
    "window",
    "min_count",
    "max_vocab_size",
    "sample",
    "seed",
    "workers",
    "min_alpha",
    "sg",
    "hs",
    "negative",
    "ns_exponent",
    "cbow_mean",
    "epochs",
    "null_word",
    "sorted_vocab",
    "batch_words",
    "compute_loss",
    "comment",
    "max_final_vocab",
    "shrink_windows",
    "engine",
)
# Training progress saved with a model, so that training can continue where it stopped.
STATE = (
    "corpus_count",
    "corpus_total_words",
    "effective_min_count",
    "train_count",
    "total_train_time",
    "running_training_loss",
    "min_alpha_yet_reached",
)


def check_settings(model: Any) -> None:
    """Check the type and range of every setting, as gensim takes them (numpy numbers
    too, stored as Python numbers so that model files stay JSON).

    Raises
    ------
    TypeError, ValueError
        A wrong type or an out-of-range value, naming the setting, its value and what is
        accepted; no objective to train.
    """
    for name, least, most in (
        ("vector_size", 1, None),
        ("window", 1, 2**31 - 1),  # gensim's C int
        ("min_count", 0, None),
        ("seed", 0, None),  # numpy's default_rng, which gensim seeds the vectors with
        ("workers", 1, MAX_WORKERS),
        ("negative", 0, MAX_NEGATIVE),
        ("epochs", 1, None),
        ("batch_words", 1, None),
    ):
        setattr(model, name, integer(name, getattr(model, name), least, most))
    for name, least in (("max_vocab_size", 0), ("max_final_vocab", 1)):  # or None
        if getattr(model, name) is not None:
            setattr(model, name, integer(name, getattr(model, name), least))
    for name, least, strict in (
        ("alpha", 0.0, True),
        ("min_alpha", 0.0, False),
        ("sample", 0.0, False),
        ("ns_exponent", None, False),
    ):
        setattr(model, name, real(name, getattr(model, name), least, strict))
    for name in (
        "sg",
        "hs",
        "cbow_mean",
        "null_word",
        "sorted_vocab",
        "compute_loss",
        "shrink_windows",
    ):
        setattr(model, name, flag(name, getattr(model, name)))
    check_type("hashfxn", model.hashfxn, "a callable", callable)
    check_type("comment", model.comment, "a str or None", lambda c: c is None or isinstance(c, str))
    check_type("engine", model.engine, f"one of {ENGINES}", lambda e: isinstance(e, str))
    if not model.negative and not model.hs:
        raise ValueError(
            "nothing to train with negative=0 and hs=0: set negative > 0 (negative "
            "sampling), hs=1 (hierarchical softmax), or both"
        )
    if model.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {model.engine!r}")


def integer(name: str, value: Any, least: int, most: int | None = None) -> int:
    """``value``, an integer (numpy's too, not a bool) in ``[least, most]``, as an ``int``.

    Raises
    ------
    TypeError
        Not an integer.
    ValueError
        Out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < least or (most is not None and value > most):
        accepted = f">= {least}" if most is None else f"in [{least}, {most}]"
        raise ValueError(f"{name} must be an integer {accepted}, got {value!r}")
    return int(value)


def real(name: str, value: Any, least: float | None = None, strict: bool = False) -> float:
    """``value``, a finite real number (numpy's too, not a bool) of at least ``least`` (above
    it if ``strict``), as a ``float``.

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        Not finite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    low = least is not None and (number <= least if strict else number < least)
    if not math.isfinite(number) or low:
        bound = "" if least is None else f" {'>' if strict else '>='} {least:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return number


def flag(name: str, value: Any) -> bool | int:
    """``value``, a switch as gensim takes it: a bool (numpy's too) or the integer 0 or 1.

    Raises
    ------
    TypeError
        Neither a bool nor an integer.
    ValueError
        An integer other than 0 and 1.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be 0, 1 or a bool, got {value!r} ({type(value).__name__})")
    if value not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1 (or a bool), got {value!r}")
    return int(value)


def check_type(name: str, value: Any, accepted: str, test: Callable[[Any], bool]) -> None:
    """Raise ``TypeError`` naming ``name``, ``value`` and what is ``accepted`` unless
    ``test(value)``."""
    if not test(value):
        raise TypeError(f"{name} must be {accepted}, got {value!r:.60} ({type(value).__name__})")


def check_trim_rule(trim_rule: Any) -> None:
    """Raise ``TypeError`` unless ``trim_rule`` is ``None`` or a callable."""
    check_type("trim_rule", trim_rule, "a callable or None", lambda f: f is None or callable(f))


CALLBACK_METHODS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")
"""What a callback must have: the methods of gensim's ``CallbackAny2Vec``."""


def check_callbacks(callbacks: Any) -> tuple:
    """``callbacks`` as a tuple of objects with gensim's ``CallbackAny2Vec`` methods.

    Raises
    ------
    TypeError
        ``callbacks`` is not a sequence (a single callback, ``None``), or holds an object
        without those methods, naming it and its position.
    """
    check_type(
        "callbacks",
        callbacks,
        "a sequence of gensim CallbackAny2Vec objects, e.g. callbacks=[MyCallback()]",
        lambda c: isinstance(c, Iterable) and not isinstance(c, (str, bytes)),
    )
    callbacks = tuple(callbacks)
    for i, callback in enumerate(callbacks):
        missing = [m for m in CALLBACK_METHODS if not callable(getattr(callback, m, None))]
        if missing:
            raise TypeError(
                f"callbacks[{i}] is {callback!r:.60} ({type(callback).__name__}), not a "
                f"gensim CallbackAny2Vec: it has no {', '.join(missing)}; subclass "
                "gensim.models.callbacks.CallbackAny2Vec"
            )
    return callbacks


def plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (so that metadata stays JSON)."""
    return value.item() if isinstance(value, np.generic) else value
