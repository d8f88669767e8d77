"""Float32 values as text, exactly as ``str(numpy.float32)`` prints them (gensim's text format),
a whole block at a time.

gensim writes ``str()`` of each float32 value: numpy's Dragon4 digits, the fewest significant
digits that read back as the same float32 (of two such, the closer), positional from 1e-4 up
to :func:`positional_limit`, else scientific. Here the digits of a whole block are
found at once: each value is scaled to 9 or 10 digits before the point, and its rounding
interval is searched, in float64, for the coarsest multiple of 10**k inside it. A value
whose interval bounds or decimal midpoint lie too close to an integer for float64 to tell
(about one in 10^4, exact ties among them) takes its digits from numpy's own formatter.

:func:`format_rows` formats blocks of rows; rows with NaN or infinities, and values of other
dtypes, go through :func:`format_row`, which is ``str`` itself.
"""

from __future__ import annotations

import math

import numpy as np


def format_row(values: np.ndarray) -> bytes:
    """One row's values as gensim writes them, one by one: `` v1 v2 ...``."""
    return f" {' '.join(str(value) for value in values)}".encode()


def positional_limit() -> float | None:
    """From which magnitude numpy's ``str(numpy.float32)`` turns to scientific notation.

    1e6 since numpy 2.3, 1e16 before it (and under ``legacy`` print options up to '2.2'); None
    under the '1.13' legacy mode, which prints six significant digits (formatted by ``str``).
    """
    if str(np.float32(0.12345679)) != "0.12345679":
        return None
    return 1e6 if str(np.float32(1e6)) == "1e+06" else 1e16


_POW10 = np.array([10.0**k for k in range(17)])  # exact in float64
_POW10_INT = 10 ** np.arange(17, dtype=np.int64)


def _power_tables() -> tuple[np.ndarray, ...]:
    """What depends on a float32 value's binary exponent alone, by ``frexp``'s power + 148.

    The decimal exponent of its first digit (or one less), 10**(8 - that) to scale it to 9 or
    10 digits before the point, its float32 spacing above, and by ``2 * (power + 148) +
    narrow`` (the spacing below being half that above) how many trailing digits of the scaled
    value surely go: those of the largest power of 10 below its rounding interval's width.
    """
    power = np.arange(-148, 129)
    e10 = np.array([math.floor((p - 1) * math.log10(2)) for p in power])
    scale = np.array([float(f"1e{8 - e}") for e in e10])
    above = np.ldexp(1.0, np.maximum(power, -125) - 24)
    width = np.stack([above, 0.75 * above], axis=1) * scale[:, None]
    drop = np.searchsorted(_POW10[1:13] * (1 + 2.0**-40), width.reshape(-1))
    return e10, scale, above, drop


_E10, _SCALE, _ABOVE, _DROP = _power_tables()


def _shortest_digits(a32: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shortest round-trip digits of positive finite float32 values.

    Returns the digits as an integer, their count and the decimal exponent of the first one.
    """
    a = a32.astype(np.float64)
    mantissa, power = np.frexp(a)  # a = mantissa * 2**power, 0.5 <= mantissa < 1
    index = (power + 148).astype(np.intp)
    e10, scale, above = _E10[index], _SCALE[index], _ABOVE[index]
    narrow = (mantissa == 0.5) & (power > -125)  # a power of two: half the spacing below
    drop = _DROP[2 * index + narrow]
    scaled = a * scale
    lo, hi = (a - np.where(narrow, above / 4, above / 2)) * scale, (a + above / 2) * scale
    tolerance = hi * 2.0**-50  # more than the rounding error of the scaled values
    unsure = _near_integer(lo, tolerance) | _near_integer(hi, tolerance)
    whole = np.floor(scaled)
    _drop_more(whole, lo, hi, drop)
    step = _POW10[drop]
    low = np.floor(whole / step) * step  # the multiples of 10**drop around the value
    high, middle = low + step, low + step / 2
    take_high = (high < hi) & ((low <= lo) | (scaled > middle))
    unsure |= np.abs(scaled - middle) <= tolerance  # a tie, or too close to tell
    chosen = np.where(take_high, high, low)
    digits = (chosen / step).astype(np.int64)
    longer = (chosen >= 1e9).astype(np.int64) + (chosen >= 1e10) + (chosen >= 1e11)
    count, exponent = 9 + longer - drop, e10 + longer
    for index in np.flatnonzero(unsure).tolist():
        digits[index], count[index], exponent[index] = _numpy_digits(a32[index])
    return digits, count, exponent


def _near_integer(x: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Where ``x`` may be an integer, or on the other side of one, for all float64 can tell."""
    fraction = x - np.floor(x)
    return (fraction <= tolerance) | (fraction >= 1 - tolerance)


def _drop_more(whole: np.ndarray, lo: np.ndarray, hi: np.ndarray, drop: np.ndarray) -> None:
    """Raise ``drop`` while a multiple of ``10**(drop + 1)`` lies between ``lo`` and ``hi``."""
    found = _fits(whole, lo, hi, _POW10[drop + 1])
    drop += found
    rows = np.flatnonzero(found)  # few: those that may drop one digit more
    while len(rows):
        rows = rows[_fits(whole[rows], lo[rows], hi[rows], _POW10[drop[rows] + 1])]
        drop[rows] += 1


def _fits(whole: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Whether a multiple of ``step`` next to ``whole`` lies strictly between ``lo`` and ``hi``."""
    low = np.floor(whole / step) * step
    return (low > lo) | (low + step < hi)


def _numpy_digits(value: np.float32) -> tuple[int, int, int]:
    """The digits, their count and the exponent of one value, from numpy's own formatter."""
    mantissa, exponent = np.format_float_scientific(value, unique=True, trim="-").split("e")
    digits = mantissa.replace(".", "")
    return int(digits), len(digits), int(exponent)


# A value's text is laid out in fixed fields of 4-byte words, whose unused bytes are zeros that
# are then squeezed out: " -", the integer part (right-aligned), ".", the fraction
# (left-aligned, 12 bytes) and "e-05".
_DIGIT_CHARS = np.frombuffer("".join(f"{i:04d}" for i in range(10000)).encode(), np.uint32)
_EXPONENT_CHARS = np.frombuffer(
    "".join(f"e{e:+03d}" for e in range(-50, 50)).encode() + bytes(4), np.uint32
)  # [exponent + 50], and [100]: none
_LEAD = np.frombuffer(b" \0\0\0 -\0\0", np.uint32)  # [negative]
_POINT = np.frombuffer(b"\0\0\0\0.\0\0\0", np.uint32)  # [has a fraction]


def _byte_masks(width: int, right: bool) -> list[np.ndarray]:
    """For each 4-byte word of a field: its mask keeping the field's first (or last) n bytes."""
    rows = [b"\xff" * n + bytes(width - n) for n in range(width + 1)]
    if right:
        rows = [row[::-1] for row in rows]
    table = np.frombuffer(b"".join(rows), np.uint32).reshape(width + 1, width // 4)
    return [np.ascontiguousarray(table[:, word]) for word in range(width // 4)]


_FRACTION_MASKS = _byte_masks(12, right=False)
_INTEGER_MASKS = {8: _byte_masks(8, right=True), 16: _byte_masks(16, right=True)}


def format_rows(block: np.ndarray, limit: float) -> list[memoryview | None]:
    """Rows of float32 values as `` v1 v2 ...``; None for rows with NaN or infinities."""
    text, lengths = _format_values(block.reshape(-1), limit)
    ends = np.cumsum(lengths.reshape(len(block), -1).sum(axis=1)).tolist()
    finite = np.isfinite(block).all(axis=1).tolist()
    view = memoryview(text)
    return [view[s:e] if ok else None for s, e, ok in zip([0, *ends[:-1]], ends, finite)]


def _format_values(values: np.ndarray, limit: float) -> tuple[bytes, np.ndarray]:
    """`` v`` for each float32 value, as ``str`` prints it, and the length of each.

    NaN and infinities come out as placeholders (their rows are formatted by ``str``).
    """
    a32 = np.abs(values)
    finite, zero = np.isfinite(a32), a32 == 0
    digits, count, exponent = _shortest_digits(np.where(finite & ~zero, a32, np.float32(1)))
    blank = ~finite | zero  # zeros print as "0.0"
    digits[blank], count[blank], exponent[blank] = 0, 1, 0
    scientific = ~zero & ((a32 < _at_least(1e-4)) | (a32 >= _at_least(limit)))
    positional = ~scientific
    whole_digits = np.where(scientific, 1, np.minimum(np.maximum(exponent + 1, 0), count))
    shift = _POW10[count - whole_digits]
    head = np.floor(digits / shift)
    zeros = np.where(positional, np.maximum(exponent + 1 - count, 0), 0)  # as in 100.0
    integer = head.astype(np.int64) * _POW10_INT[zeros]
    integer_length = np.where(positional, np.maximum(exponent + 1, 1), 1)
    fraction_length = count - whole_digits + np.where(positional, np.maximum(-exponent - 1, 0), 0)
    fraction_length[positional & (fraction_length == 0)] = 1  # as in 100.0
    fraction = ((digits - head * shift) * _POW10[12 - fraction_length]).astype(np.int64)
    width = 8 if limit <= 1e8 else 16  # bytes of the longest positional integer part
    words = width // 4
    fields = np.empty((len(values), words + 6), dtype=np.uint32)
    fields[:, 0] = np.where(np.signbit(values), _LEAD[1], _LEAD[0])
    fields[:, 1 : words + 1] = _digit_words(integer, _INTEGER_MASKS[width], integer_length)
    fields[:, words + 1] = np.where(fraction_length > 0, _POINT[1], _POINT[0])
    fields[:, words + 2 : words + 5] = _digit_words(fraction, _FRACTION_MASKS, fraction_length)
    fields[:, words + 5] = _EXPONENT_CHARS[np.where(scientific, exponent + 50, 100)]
    chars = fields.view(np.uint8)
    lengths = 1 + np.signbit(values) + integer_length + (fraction_length > 0) + fraction_length
    return chars[chars != 0].tobytes(), lengths + 4 * scientific


def _at_least(bound: float) -> np.float32:
    """The smallest float32 at or above ``bound``: ``x < bound`` is ``x < _at_least(bound)``."""
    nearest = np.float32(bound)
    return nearest if float(nearest) >= bound else np.nextafter(nearest, np.float32(np.inf))


def _digit_words(number: np.ndarray, masks: list[np.ndarray], length: np.ndarray) -> np.ndarray:
    """The decimal digits of ``number``, 4 to a word, masked to keep ``length`` bytes."""
    words = np.empty((len(number), len(masks)), dtype=np.uint32)
    for word, mask in enumerate(masks):
        unit = 10 ** (4 * (len(masks) - 1 - word))
        group = number // unit
        number = number - group * unit
        words[:, word] = _DIGIT_CHARS[group] & mask[length]
    return words
