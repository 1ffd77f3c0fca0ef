"""The second core: a helper process computes the pixels k..D-1 half of both products.

The step's two products are sums over the pixels: ``z^T = W[:k]^T X[:, :k]^T + W[k:]^T
X[:, k:]^T`` (the split BLAS itself makes, :func:`scratchlr.probes.pixel_split`), and
``dJ/dW`` is one row per pixel, ``dJ/dW[k:] = X[:, k:]^T G``. So the work splits by
pixels: for every full batch a forked helper process makes its own copy of pixels k..D-1
(one batch ahead) and, when the trainer says so, computes the right-hand partial sum of
the forward and the right-hand rows of the gradient, with the same calls the step would
make, into buffers in shared memory; the trainer meanwhile does pixels 0..k-1, then adds
the partial sum and copies the rows. Same calls on the same values: the same bits.

The hand-over is counters in shared memory (NumPy holds the GIL between its calls, so a
thread would not run alongside; a process does). The helper says which step it waits for
(its pixels made); the trainer hands step t over only if it is that one, posting task
``2t + 1`` (the forward of step t) and later ``2t + 2`` (its gradient), and otherwise
says it goes alone: then it does the step exactly as without a helper, and the helper
skips to the next batch. The helper writes each result, then the task's number into
``done`` (x86-64 keeps stores in order). The trainer never waits long: if a result is
not there after a short spin (the helper's core was busy elsewhere), the step makes
those pixels and that product itself, and the late result is ignored.

Two busy cores do not always help: on some hosts one core's work slows the other's by
half, like two hyperthreads of one core. So every ROUND steps the trainer times TRIAL
steps without the helper and TRIAL with it, and goes the faster way for the rest of the
round (:meth:`Helper.want`). The helper spins for new tasks, since waking a sleeping
process costs tens of microseconds on a VM; while it is not wanted, or after ~1 ms
without a task, it sleeps on a pipe, which the trainer writes to only then, and which
closes at the end of the loop, on an error, or when the trainer dies: then the helper
returns.
"""

from __future__ import annotations

import mmap
import os
import platform
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from time import perf_counter_ns
from types import TracebackType
from typing import Any

import numpy as np

from .batches import Ranges, fill_pixels, rows

FORWARD, GRADIENT = 1, 2  # step t's tasks are numbered 2t + FORWARD and 2t + GRADIENT
SPINS = 8192  # the helper's checks for a new task (~1 ms) before it sleeps on the pipe
PATIENCE = 400  # the trainer's checks for a result (~20 us)
ROUND, TRIAL = 250, 16  # every ROUND steps: TRIAL steps timed without the helper, TRIAL with it


class HelperError(RuntimeError):
    """The step was called out of step with the batches the helper works on."""


def unusable(xp: Any) -> str | None:
    """Why a helper process cannot share the step's work here, or None if it can."""
    if xp is not np:
        return "the step runs on the device"
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


class Helper:
    """Iterates over ``batches`` while a helper process computes, for each full batch (B
    rows) the trainer hands it, ``zT2 = W[k:]^T X[:, k:]^T`` and ``gW = X[:, k:]^T G`` from
    its own copy of the pixels ``images[:, k:]`` (passed as ``images_right``). ``WT_right``
    (C, D-k) and ``G`` (B, C) are views of the trainer's parameters and gradient in shared
    memory. A context manager: the helper starts on entry and is stopped and reaped on exit."""

    def __init__(self, images_right: np.ndarray, batches: Iterator[Ranges], WT_right: np.ndarray,
                 G: np.ndarray, scale: Any) -> None:
        self.images, self.batches, self.WT, self.G, self.scale = images_right, batches, WT_right, G, scale
        (B, C), dtype = G.shape, G.dtype
        self.zT2 = shared_array((C, B), dtype)  # its W[k:]^T X[:, k:]^T
        self.gW = shared_array((WT_right.shape[1], C), dtype)  # its X[:, k:]^T G
        self.ctrl = shared_array((7, 8), np.int64)  # one 64-byte row each, so no false sharing
        self.posted, self.done, self.first, self.asleep, self.waiting, self.alone, self.wanted = self.ctrl
        self.waiting[0] = self.alone[0] = -1  # the step the helper is ready for; the last one done without it
        self.wanted[0] = 1  # whether the trainer hands steps over now (else the helper sleeps)
        self.t = -1  # the trainer's step
        self.start = -1  # its batch's first row
        self.handed = False  # whether step t was handed over
        self.faster = True  # whether the last trial found steps faster with the helper
        self.times: dict[bool, list[int]] = {False: [], True: []}  # the trial's step times (ns), by handed
        self.last = 0  # when step t began (ns)
        self.in_time = False  # this step's forward came from the helper
        self.helped = 0  # steps whose both products' right halves came from the helper
        self.pid, self.wake = 0, -1

    def __enter__(self) -> Helper:
        listen, self.wake = os.pipe()
        self.pid = os.fork()  # both processes go on with their own copy of `batches`
        if self.pid == 0:
            status = 1
            try:
                os.close(self.wake)  # so that the pipe ends when the trainer's end closes
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
                self.serve(listen)
                status = 0
            finally:
                os._exit(status)  # never back into the parent's stack (atexit, buffered output)
        os.close(listen)
        os.set_blocking(self.wake, False)  # never wait on a helper that stopped reading
        return self

    def serve(self, listen: int) -> None:
        """The helper: for each full batch u the trainer has not begun, its pixels k..D-1 in
        buffer u % 2, then ``waiting = u``, then step u's two tasks if the trainer hands them
        over (it makes batch u + 1's pixels between the two). Returns when the pipe closes."""
        B = self.G.shape[0]
        own = [np.empty((B, self.images.shape[1]), self.G.dtype) for _ in range(2)]
        batches, made = iter(self.batches), -1  # made: the batch whose pixels are in own[made % 2]
        ranges, u = next(batches, None), 0
        while ranges is not None:
            if rows(ranges) != B or self.alone[0] >= u:  # a partial batch, or one the trainer has begun
                ranges, u = next(batches, None), u + 1
                continue
            if made != u:
                fill_pixels(own[u % 2], self.images, ranges, self.scale)
                made = u
            self.waiting[0] = u  # the trainer hands step u over only if it sees this first
            if not self.wait_for(2 * u + FORWARD, u, listen):
                return
            if self.posted[0] == 2 * u + FORWARD:  # handed over: both tasks follow
                self.first[0] = ranges[0][0]
                np.matmul(self.WT, own[u % 2].T, out=self.zT2)
                self.done[0] = 2 * u + FORWARD  # stored after the result: x86-64 keeps stores in order
                after = next(batches, None)
                if after is not None and rows(after) == B:  # the next pixels, while the trainer is busy
                    fill_pixels(own[(u + 1) % 2], self.images, after, self.scale)
                    made = u + 1
                if not self.wait_for(2 * u + GRADIENT, u, listen):
                    return
                np.matmul(own[u % 2].T, self.G, out=self.gW)
                self.done[0] = 2 * u + GRADIENT
            else:
                after = next(batches, None)
            ranges, u = after, u + 1
        while os.read(listen, 4096):  # all done: wait for the trainer to finish
            pass

    def wait_for(self, task: int, u: int, listen: int) -> bool:
        """Spin until the trainer has posted ``task`` (or a later one) or begun step u alone;
        sleep on the pipe after SPINS checks, or at once while the trainer hands no steps
        over (a spinning core slows the other on some hosts). False if the pipe has closed."""
        spins, posted, alone, wanted = 0, self.posted, self.alone, self.wanted
        while posted[0] < task and alone[0] < u:
            spins += 1
            if spins >= SPINS or not wanted[0]:  # sleep until the trainer writes
                self.asleep[0] = 1
                idle = posted[0] < task and alone[0] < u and (spins >= SPINS or not wanted[0])
                if idle and not os.read(listen, 4096):
                    return False
                self.asleep[0], spins = 0, 0
        return True

    def __iter__(self) -> Iterator[Ranges]:
        return iter(self.batches)

    def begin(self, ranges: Ranges) -> bool:
        """Start the trainer's next step: hand its forward to the helper if steps are handed
        over now (:meth:`want`) and the helper is waiting for this very step (so it has its
        pixels), else say it goes alone; whether it handed it over."""
        want = self.want()
        self.t += 1
        self.start, self.in_time = ranges[0][0], False
        self.handed = want and self.waiting[0] == self.t and rows(ranges) == self.G.shape[0]
        if self.handed:
            self.post(FORWARD)
            return True
        self.alone[0] = self.t
        if want:  # a helper asleep on a step it missed catches up
            self.wake_up()
        return False

    def want(self) -> bool:
        """Whether to hand the next step over. The host decides whether two busy cores help:
        on some, one core's work slows the other's by half. So every ROUND steps, TRIAL steps
        are timed without the helper (asleep) and TRIAL with it, and the rest of the round
        goes the way whose median step was shorter."""
        r = (self.t + 1) % ROUND
        if r <= 2 * TRIAL:  # the clock is read in the trials only
            now = perf_counter_ns()
            if r > 0:  # step t was in the trial: time it
                self.times[self.handed].append(now - self.last)
            self.last = now
        if r == 2 * TRIAL:
            helped, alone = self.times[True], self.times[False]
            self.faster = not alone or (bool(helped) and median(helped) < median(alone))
            self.times = {False: [], True: []}
        want = TRIAL <= r < 2 * TRIAL or (r >= 2 * TRIAL and self.faster)
        if self.wanted[0] != want:  # stored on a change only: the helper spins on this line
            self.wanted[0] = want
        return want

    def post(self, task: int) -> None:
        """Tell the helper to do ``task`` of this step (its inputs are ready)."""
        self.posted[0] = 2 * self.t + task
        self.wake_up()

    def wake_up(self) -> None:
        """Wake the helper if it sleeps (one it misses, seen late, costs the helper one step)."""
        if self.asleep[0]:
            try:
                os.write(self.wake, b"\0")
            except (BlockingIOError, BrokenPipeError):  # a helper that is behind, or gone
                pass

    def result(self, task: int) -> bool:
        """Whether the helper's result for ``task`` of this step is there (``zT2`` or ``gW``),
        after a short spin; none while it is late (then the step computes it itself)."""
        want, done = 2 * self.t + task, self.done
        for _ in range(PATIENCE):
            if done[0] == want:
                break
        ok = bool(done[0] == want)
        if ok and task == FORWARD:
            if self.first[0] != self.start:
                raise HelperError(f"batch {self.t} is not the one the helper has (steps and batches out of step)")
            self.in_time = True
        elif ok and self.in_time:
            self.helped += 1
        return ok

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.wake >= 0:
            os.close(self.wake)  # the helper reads the end of the pipe and returns
            self.wake = -1
        if self.pid:
            os.waitpid(self.pid, 0)
            self.pid = 0
