"""Which examples each step sees, as ``tf.data`` would hand them out.

``repeat`` is ``Dataset.repeat().batch(B)``: batches run across the epoch boundary and
are never partial. ``epoch`` re-iterates ``Dataset.batch(B)`` one pass at a time: the
last batch of each pass is partial. A batch is a list of contiguous ``[lo, hi)`` ranges,
so it can be sliced (views) rather than gathered.

Shuffled (:func:`shuffled_batches`), the same ranges index a fresh permutation of the
examples each epoch, and each batch is gathered, still uint8, from the permuted rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import namespace_of

BATCHINGS = ("repeat", "epoch")
Ranges = list[tuple[int, int]]


def batch_ranges(n: int, batch_size: int, num_steps: int, batching: str) -> Iterator[Ranges]:
    """For each step, the batch as contiguous ``[lo, hi)`` ranges of the n examples.

    ``repeat``: batch k holds examples kB .. kB+B-1 of the endlessly repeated data (mod n),
    one range, or more where it wraps past the end. ``epoch``: ranges [0,B), [B,2B), ...,
    [mB, n), then from 0 again.
    """
    if batching == "repeat":
        pos = 0
        for _ in range(num_steps):
            ranges = []
            need = batch_size
            while need:
                take = min(need, n - pos)
                ranges.append((pos, pos + take))
                pos = (pos + take) % n
                need -= take
            yield ranges
    else:
        step = 0
        while True:
            for lo in range(0, n, batch_size):
                if step == num_steps:
                    return
                yield [(lo, min(lo + batch_size, n))]
                step += 1


def batches(
    images: Any,
    labels: Any,
    batch_size: int,
    num_steps: int,
    batching: str,
    shuffle: bool = False,
    seed: int = 0,
) -> Iterator[tuple[Any, ...]]:
    """(images, labels, ranges) for each of ``num_steps`` steps: the ranges of :func:`batch_ranges`
    into the examples as they are, or, with ``shuffle``, into a permutation of them drawn
    each epoch from ``numpy.random.default_rng(seed)`` (:func:`shuffled_batches`)."""
    ranges = batch_ranges(len(labels), batch_size, num_steps, batching)
    if shuffle:
        return shuffled_batches(images, labels, ranges, np.random.default_rng(seed))
    return ((images, labels, r) for r in ranges)


def shuffled_batches(
    images: Any, labels: Any, batches: Iterator[Ranges], rng: Any
) -> Iterator[tuple[Any, ...]]:
    """(images, labels, ranges) per step, the ranges of ``batches`` read through a permutation.

    Each epoch (a range starting at example 0) draws ``rng.permutation(n)`` on the host
    (``numpy.random.Generator``, so a seed gives the same order on every backend), sends it
    to the device once, and each batch gathers its rows of it: uint8 images, never the whole
    set as floats. The yield is the gathered batch with the one range [0, rows).
    """
    xp = namespace_of(images)
    for ranges in batches:
        parts = []
        for lo, hi in ranges:
            if lo == 0:  # a new epoch
                order = xp.asarray(rng.permutation(len(labels)))
            parts.append(order[lo:hi])
        index = parts[0] if len(parts) == 1 else xp.concatenate(parts)
        yield (
            xp.take(images, index, axis=0),
            xp.take(labels, index),
            [(0, len(index))],
        )  # take: a row memcpy each


def rows(ranges: Ranges) -> int:
    """How many examples the batch ``ranges`` holds."""
    return ranges[0][1] - ranges[0][0] if len(ranges) == 1 else sum(hi - lo for lo, hi in ranges)


def take_into(out: Any, array: Any, ranges: Ranges) -> Any:
    """out = the rows of ``array`` in ``ranges``, back to back (cast to out's dtype): no
    gathered copy. out has exactly ``rows(ranges)`` rows."""
    xp = namespace_of(out)
    at = 0
    for lo, hi in ranges:
        xp.copyto(out[at : at + hi - lo], array[lo:hi])
        at += hi - lo
    return out


def take(array: Any, ranges: Ranges) -> Any:
    """The rows of ``array`` in ``ranges``: a view for one range, a copy for several."""
    if len(ranges) == 1:
        lo, hi = ranges[0]
        return array[lo:hi]
    return namespace_of(array).concatenate([array[lo:hi] for lo, hi in ranges])


def fill_pixels(X: Any, images: Any, ranges: Ranges, scale: Any) -> None:
    """X = images[ranges] * scale: uint8 -> float (exact), then one float multiply, as
    :func:`scratchlr.model.pixels`. X (n, D), n the rows in ``ranges``, is written range by
    range: a batch that wraps around the end of the images needs no gathered copy."""
    take_into(X, images, ranges)
    X *= scale
