"""The seed's ``Dataset.prefetch``: a helper process makes the next batch's pixels while the
step trains on this one.

Turning a batch's uint8 rows into ``x = u8 * (1/255)`` is ~25 us of a ~130 us step, and it
does not depend on the parameters, so it can run one batch ahead on a second core, as the
seed's ``prefetch`` runs its input pipeline in TensorFlow's own threads. NumPy holds the
GIL between its calls, so the helper is a process: forked, so that it shares the images
with the trainer without a copy, writing into two buffers in shared memory that the step
uses as its X (batch t in buffer t % 2), with the same copy and multiply the step would
do itself (:func:`fill_pixels`), so the pixels are the same bits.

The two processes hand the buffers over through counters in shared memory, each spinning
on the other's: ``ready`` (batches made) and ``finished`` (batches the step is done with).
A wake-up through the kernel (a pipe, a semaphore) costs tens of microseconds on a VM, a
large part of a step. The helper stops after the last batch, when told to, or when its
parent is gone; the trainer raises :class:`PrefetchError` if the helper dies.
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

from .batches import Ranges

CHECK_EVERY = 1 << 16  # spins between checks that the other process is still there


class PrefetchError(RuntimeError):
    """The helper process stopped before it made the batches."""


def fill_pixels(xp: Any, X: Any, images: Any, ranges: Ranges, scale: Any) -> None:
    """X = images[ranges] * scale: uint8 -> float (exact), then one float multiply, as
    :func:`scratchlr.model.pixels`. X (n, D), n the rows in ``ranges``, is written range by
    range: a batch that wraps around the end of the images needs no gathered copy."""
    at = 0
    for lo, hi in ranges:
        xp.copyto(X[at : at + hi - lo], images[lo:hi])
        at += hi - lo
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
        self.ready, self.finished, self.stop, self.first = self.ctrl[0], self.ctrl[1], self.ctrl[2], self.ctrl[3]
        self.t = 0  # the next batch the step takes
        self.pid = 0

    def __enter__(self) -> Prefetch:
        parent = os.getpid()
        self.pid = os.fork()  # both processes go on with their own copy of `batches`
        if self.pid == 0:
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
                self.fill(parent)
                status = 0
            finally:
                os._exit(status)  # never back into the parent's stack (atexit, buffered output)
        return self

    def fill(self, parent: int) -> None:
        """The helper: batch u into slot u % 2 once the step is done with batch u - 2."""
        for u, ranges in enumerate(self.batches):
            spins = 0
            while self.finished[0] < u - 1:
                if self.stop[0]:
                    return
                spins += 1
                if spins % CHECK_EVERY == 0 and os.getppid() != parent:
                    return
            rows = sum(hi - lo for lo, hi in ranges)
            fill_pixels(np, self.slots[u % 2][:rows], self.images, ranges, self.scale)
            self.first[u % 2] = ranges[0][0]
            self.ready[0] = u + 1  # stored after the pixels: x86-64 keeps stores in order

    def __iter__(self) -> Iterator[Ranges]:
        return iter(self.batches)

    def take(self, ranges: Ranges) -> int:
        """Wait until batch t's pixels are made; -> the slot that holds them. Taking batch
        t also says the step is done with batch t - 1."""
        t = self.t
        self.finished[0] = t
        spins = 0
        while self.ready[0] <= t:
            spins += 1
            if spins % CHECK_EVERY == 0 and os.waitpid(self.pid, os.WNOHANG)[0]:
                self.pid = 0
                raise PrefetchError("the prefetch helper process exited before making its batches")
        if self.first[t % 2] != ranges[0][0]:
            raise PrefetchError(f"batch {t} is not the one prefetched (steps and batches out of step)")
        self.t = t + 1
        return t % 2

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop[0] = 1
        if self.pid:
            os.waitpid(self.pid, 0)
            self.pid = 0
