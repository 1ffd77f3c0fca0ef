"""The helper process: the same bits, in step with the trainer, never left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from scratchlr import helper as helper_module
from scratchlr import model
from scratchlr.batches import batch_ranges, fill_pixels, take
from scratchlr.fast import FastStep
from scratchlr.helper import Helper, HelperError, unusable

ROOT = Path(__file__).resolve().parents[1]
REASON = unusable(np)
needs_helper = pytest.mark.skipif(REASON is not None, reason=f"no helper process here: {REASON}")


def images_and_labels(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n)


def test_a_helper_can_run_where_ci_runs() -> None:
    """CI's machine (two cores, x86-64) must take the helper's path the tests below check."""
    if REASON is not None and os.environ.get("CI"):
        pytest.fail(f"no helper process under CI: {REASON}")


def test_unusable_says_why() -> None:
    assert "device" in unusable(object())
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert "threads" in unusable(np) or REASON is not None
    finally:
        stop.set()
        other.join()


def test_fill_pixels_is_model_pixels() -> None:
    images, _ = images_and_labels()
    ranges = [(250, 300), (0, 78)]  # a batch that wraps around the end
    X = np.empty((128, 784), np.float32)
    fill_pixels(X, images, ranges, np.float32(1 / 255))
    assert X.tobytes() == model.pixels(take(images, ranges), np.float32).tobytes()


def eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether ``condition()`` holds within ``seconds`` (polled every millisecond)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trainer that waits up to ~50 ms for each result, so that a live helper is in time,
    however busy this machine (the real one gives up after ~20 us), and that hands every
    step over to a waiting helper (no timed trials without it)."""
    monkeypatch.setattr(helper_module, "PATIENCE", 10**6)
    monkeypatch.setattr(helper_module, "TRIAL", 0)


def started(batches: Helper) -> None:
    """Wait until the helper has made batch 0's pixels and waits for step 0: asleep."""
    assert eventually(lambda: batches.asleep[0] == 1)


def twelve_steps(helping: bool, kill: bool = False) -> tuple[list[bytes], Helper | None]:
    """The bytes of W, b and the logged sums after 12 steps (lr 0.5), made by the step alone
    or with a helper that is ready for each step before it begins (or killed before the
    first, if asked); and the helper."""
    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float32)
    W, b = step.W, step.b
    batches = batch_ranges(len(labels), 128, 12, "repeat")  # wraps at steps 2, 4, 7, 9
    with step.helper(images, batches) if helping else nullcontext(batches) as batches:
        if helping:
            assert isinstance(batches, Helper)
            started(batches)
        if kill:
            os.kill(batches.pid, signal.SIGKILL)
        for t, ranges in enumerate(batches):
            if helping and not kill:
                assert eventually(lambda: batches.waiting[0] == t)  # noqa: B023 (called right here)
            W, b = step(images, labels, ranges, W, b, 0.5)
    return [np.asarray(a).tobytes() for a in (W, b, *step.logged())], batches if helping else None


@needs_helper
def test_helped_steps_equal_steps_alone(patient: None) -> None:
    helped, helper = twelve_steps(True)
    assert helped == twelve_steps(False)[0] and helper.helped == 12


@needs_helper
def test_parameters_handed_in_are_in_place_before_the_helper_is_told(patient: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """W and b the step did not hand out are taken in before a step is handed over: from
    then on the helper reads W (a race too short to lose reliably, so it is checked here)."""
    images, labels = images_and_labels()
    rng = np.random.default_rng(5)
    W0, b0 = rng.normal(0, 0.05, (784, 10)).astype(np.float32), rng.normal(0, 0.1, 10).astype(np.float32)
    step = FastStep(np, 128, 784, 10, np.float32)
    seen = []
    begin = Helper.begin

    def watched(self: Helper, ranges: list) -> bool:
        seen.append(step.W.tobytes() == W0.tobytes() and step.b.tobytes() == b0.tobytes())
        return begin(self, ranges)

    monkeypatch.setattr(Helper, "begin", watched)
    with step.helper(images, batch_ranges(len(labels), 128, 1, "repeat")) as batches:
        started(batches)
        step(images, labels, [(0, 128)], W0.copy(), b0.copy(), 0.5)
        assert batches.helped == 1
    assert seen == [True]


def test_no_helper_without_a_pixel_split() -> None:
    """float64 (OpenBLAS's dgemm sums X W in one pass: no pixel split) keeps the step to itself."""
    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float64)
    if step.probes(128)[0] is not None:
        pytest.skip("this BLAS splits float64's X W too")
    batches = batch_ranges(len(labels), 128, 3, "repeat")
    with step.helper(images, batches) as helped:
        assert helped is batches


def no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@needs_helper
def test_helper_is_stopped_and_reaped_when_the_loop_fails() -> None:
    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float32)
    with pytest.raises(KeyError):
        with step.helper(images, batch_ranges(len(labels), 128, 10**6, "repeat")) as batches:
            pid = batches.pid
            for ranges in batches:
                step(images, labels, ranges, step.W, step.b, 0.1)
                raise KeyError("a failure in the loop")
    assert step.partner is None and no_children_left()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@needs_helper
def test_without_its_helper_the_step_does_all_of_it(patient: None) -> None:
    """A helper that is late, or dead, costs speed, never a hang or other numbers."""
    after_kill, helper = twelve_steps(True, kill=True)
    assert after_kill == twelve_steps(False)[0]
    assert helper.helped == 0  # step 0 was handed over and missed; then
    assert helper.alone[0] == 11  # the trainer went alone, as the helper no longer waited for a step
    assert no_children_left()


@needs_helper
def test_a_helper_that_falls_behind_is_not_waited_for_and_catches_up(patient: None) -> None:
    """Stopped for a few steps (as a host may stop its core), the helper is handed none of
    them; let go, it skips to the trainer's step and is handed the rest."""
    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float32)
    W, b = step.W, step.b
    with step.helper(images, batch_ranges(len(labels), 128, 12, "repeat")) as batches:
        for t, ranges in enumerate(batches):
            if t == 3:
                os.kill(batches.pid, signal.SIGSTOP)  # it may already wait for step 3: that one is missed
            if t == 7:
                os.kill(batches.pid, signal.SIGCONT)
            if t < 3 or t >= 7:
                assert eventually(lambda: batches.waiting[0] == t)  # noqa: B023 (called right here)
            W, b = step(images, labels, ranges, W, b, 0.5)
            if 4 <= t < 7:
                assert batches.alone[0] == t  # not handed over: the helper was not waiting for it
    assert batches.helped == 8  # steps 0-2 and 7-11
    assert [np.asarray(a).tobytes() for a in (W, b, *step.logged())] == twelve_steps(False)[0]


@needs_helper
@pytest.mark.parametrize("helper_faster", [True, False])
def test_steps_go_the_way_the_trials_found_faster(monkeypatch: pytest.MonkeyPatch, helper_faster: bool) -> None:
    """Every ROUND steps, TRIAL steps without the helper and TRIAL with it are timed; the
    rest of the round goes the faster way. The helper sleeps while it is not used, and is
    woken when it is wanted again."""
    monkeypatch.setattr(helper_module, "PATIENCE", 10**6)
    monkeypatch.setattr(helper_module, "SPINS", 10**8)  # seconds: it sleeps because it is told to
    monkeypatch.setattr(helper_module, "ROUND", 30)
    monkeypatch.setattr(helper_module, "TRIAL", 4)
    clock = [0]  # a step handed over "takes" 1 or 3 ms, one done alone 2 ms
    monkeypatch.setattr(helper_module, "perf_counter_ns", lambda: clock[0])

    def handed(t: int) -> bool | None:
        """Whether step t must be handed over (None: the first of a trial, either)."""
        r = t % 30
        return False if r < 4 else None if r == 4 else True if r < 8 else helper_faster

    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float32)
    with step.helper(images, batch_ranges(len(labels), 128, 40, "repeat")) as batches:
        for t, ranges in enumerate(batches):
            if handed(t):
                assert eventually(lambda: batches.waiting[0] == t)  # noqa: B023 (called right here)
            step(images, labels, ranges, step.W, step.b, 0.1)
            assert handed(t) in (None, batches.handed), t
            clock[0] += (1 if helper_faster else 3) * 10**6 if batches.handed else 2 * 10**6
            if handed(t) is False:
                assert batches.wanted[0] == 0 and eventually(lambda: batches.asleep[0] == 1, 2)
        assert batches.faster == helper_faster


@needs_helper
def test_a_helper_that_fell_asleep_is_woken_by_the_next_task(patient: None) -> None:
    """Between slow steps the helper stops spinning and sleeps; posting a task wakes it."""
    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float32)
    with step.helper(images, batch_ranges(len(labels), 128, 8, "repeat")) as batches:
        for ranges in batches:
            time.sleep(0.05)  # far longer than the helper spins
            assert eventually(lambda: batches.asleep[0] == 1)  # waiting for this step's forward
            step(images, labels, ranges, step.W, step.b, 0.1)
    assert batches.helped >= 7  # a wake-up the trainer misses (it saw the flag late) costs one


@needs_helper
def test_a_step_out_of_step_with_the_helper_is_an_error(patient: None) -> None:
    images, labels = images_and_labels()
    step = FastStep(np, 128, 784, 10, np.float32)
    with step.helper(images, batch_ranges(len(labels), 128, 10, "repeat")) as batches:
        started(batches)
        with pytest.raises(HelperError, match="not the one the helper has"):
            step(images, labels, [(100, 228)], step.W, step.b, 0.1)  # batch 0 is rows 0..127


ORPHAN = """
import os, signal, sys
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
from scratchlr.batches import batch_ranges
from scratchlr.fast import FastStep
images = np.zeros((300, 784), np.uint8)
labels = np.zeros(300, np.int64)
step = FastStep(np, 128, 784, 10, np.float32)
with step.helper(images, batch_ranges(300, 128, 10**6, "repeat")) as batches:
    step(images, labels, next(iter(batches)), step.W, step.b, 0.1)
    print(batches.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no clean-up: the helper must notice by itself
"""


def gone(pid: int) -> bool:
    """No such process, or only its zombie (exited, not yet reaped by its new parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return True


@needs_helper
def test_helper_exits_when_its_trainer_is_killed() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", ORPHAN], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


@needs_helper
@pytest.mark.parametrize("flag", [[], ["--no-helper"], ["--no-prefetch"]])
def test_cli_says_whether_a_helper_ran(mnist_dir: Path, flag: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "scratchlr", "--data-dir", str(mnist_dir), "--num-steps", "50",
                           *flag], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stderr.strip().splitlines()[-1]
    assert bool(re.search(r", helper in time for \d+/50 steps$", summary)) == (not flag), summary
