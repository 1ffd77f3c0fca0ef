"""The seed's ``Dataset.prefetch``: a helper process makes the next batch's pixels while the
step trains on this one.

Turning a batch's uint8 rows into ``x = u8 * (1/255)`` is ~25 us of a ~130 us step, and it
does not depend on the parameters, so it can run one batch ahead on a second core, as the
seed's ``prefetch`` runs its input pipeline in TensorFlow's own threads. NumPy holds the
GIL between its calls, so the helper is a process: forked, so that it shares the images
with the trainer without a copy, writing into two buffers in shared memory that the step
uses as its X (batch t in buffer t % 2), with the same copy and multiply the step would
do itself (:func:`fill_pixels`), so the pixels are the same bits.

The trainer never waits for the helper: taking batch t, it says through a counter in
shared memory that batch t - 1's buffer is free, and uses batch t's buffer if another
counter says it is made; if not (the helper's core was busy elsewhere), the step makes
the pixels itself, as without a helper. The helper waits for a free buffer by spinning
on the counter, since waking a sleeping process costs tens of microseconds on a VM, a
large part of a step (measured: through a pipe alone, the helper was in time for fewer
than half the batches). After ~1 ms without a free buffer (the trainer is busy
elsewhere, or gone) it sleeps on a pipe, which the trainer writes to only then, and
which closes at the end of the loop, on an error, or when the trainer dies: then the
helper returns.
"""

from __future__ import annotations

import mmap
import os
import platform
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .batches import Ranges, rows, take_into

SPINS = 8192  # the helper's checks of the counter (~1 ms) before it sleeps on the pipe


class PrefetchError(RuntimeError):
    """The step was called out of step with the batches being prefetched."""


def fill_pixels(X: Any, images: Any, ranges: Ranges, scale: Any) -> None:
    """X = images[ranges] * scale: uint8 -> float (exact), then one float multiply, as
    :func:`scratchlr.model.pixels`. X (n, D), n the rows in ``ranges``, is written range by
    range: a batch that wraps around the end of the images needs no gathered copy."""
    take_into(X, images, ranges)
    X *= scale


def unusable(xp: Any) -> str | None:
    """Why a helper process cannot make the batches here, or None if it can."""
    if xp is not np:
        return "the batches are made on the device"
    if not hasattr(os, "fork") or platform.machine().lower() not in ("x86_64", "amd64"):
        return "needs fork() and x86-64's store order"  # the spin hand-over relies on both
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores < 2:
        return "one CPU core"
    status = Path("/proc/self/status")
    threads = next((int(line.split()[1]) for line in status.read_text().splitlines()
                    if line.startswith("Threads:")), 1) if status.exists() else threading.active_count()
    if threads > 1:
        return f"{threads} threads in this process (forking it is unsafe)"
    return None


def shared_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zeroed array in anonymous shared memory: a forked child writes what the parent reads."""
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1))
    return np.frombuffer(buffer, dtype, count).reshape(shape)


class Prefetch:
    """Iterates over ``batches`` while a helper process fills ``slots[t % 2]`` with batch t's
    pixels; :meth:`take` hands batch t to the step. A context manager: the helper starts on
    entry and is stopped and reaped on exit."""

    def __init__(self, images: np.ndarray, batches: Iterator[Ranges], slots: np.ndarray, scale: Any) -> None:
        self.images, self.batches, self.slots, self.scale = images, batches, slots, scale
        self.ctrl = shared_array((4, 8), np.int64)  # one 64-byte row each, so no false sharing
        self.ready, self.finished, self.first, self.asleep = self.ctrl
        self.t = 0  # the next batch the step takes
        self.made = 0  # batches the step took from the helper
        self.pid, self.wake = 0, -1

    def __enter__(self) -> Prefetch:
        listen, self.wake = os.pipe()
        self.pid = os.fork()  # both processes go on with their own copy of `batches`
        if self.pid == 0:
            status = 1
            try:
                os.close(self.wake)  # so that the pipe ends when the trainer's end closes
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
                self.fill(listen)
                status = 0
            finally:
                os._exit(status)  # never back into the parent's stack (atexit, buffered output)
        os.close(listen)
        os.set_blocking(self.wake, False)  # never wait on a helper that stopped reading
        return self

    def fill(self, listen: int) -> None:
        """The helper: batch u into slot u % 2 once the step is done with batch u - 2.
        Returns when the pipe closes."""
        for u, ranges in enumerate(self.batches):
            spins = 0
            while self.finished[0] < u - 1:
                spins += 1
                if spins == SPINS:  # the trainer is not taking batches: sleep until it writes
                    self.asleep[0] = 1
                    if self.finished[0] < u - 1 and not os.read(listen, 4096):
                        return
                    self.asleep[0], spins = 0, 0
            fill_pixels(self.slots[u % 2][: rows(ranges)], self.images, ranges, self.scale)
            self.first[u % 2] = ranges[0][0]
            self.ready[0] = u + 1  # stored after the pixels: x86-64 keeps stores in order
        while os.read(listen, 4096):  # all made: wait for the trainer to finish
            pass

    def __iter__(self) -> Iterator[Ranges]:
        return iter(self.batches)

    def take(self, ranges: Ranges) -> int | None:
        """The slot holding batch t's pixels, or None if the helper has not made them yet
        (the step then makes them itself). Taking batch t frees batch t - 1's slot."""
        t = self.t
        self.t = t + 1
        self.finished[0] = t
        if self.asleep[0]:  # (one it misses, seen late, costs the helper one batch)
            try:
                os.write(self.wake, b"\0")
            except (BlockingIOError, BrokenPipeError):  # a helper that is behind, or gone
                pass
        if self.ready[0] <= t:
            return None
        if self.first[t % 2] != ranges[0][0]:
            raise PrefetchError(f"batch {t} is not the one prefetched (steps and batches out of step)")
        self.made += 1
        return t % 2

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.wake >= 0:
            os.close(self.wake)  # the helper reads the end of the pipe and returns
            self.wake = -1
        if self.pid:
            os.waitpid(self.pid, 0)
            self.pid = 0
