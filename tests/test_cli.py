"""The command line as a user meets it: one-line errors, exit codes, the seed's output.

Usage errors are checked in this process through ``main([...])``; a few runs go through a
fresh ``python -m scratchlr`` as a user would start it."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import gpu_available
from helpers import damaged_copy, run_cli

from scratchlr.cli.main import main
from scratchlr.config import Config, flag

ROOT = Path(__file__).resolve().parents[1]


def assert_one_line_error(proc: subprocess.CompletedProcess, status: int, *words: str) -> None:
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchlr"), proc.stderr
    for word in words:
        assert word in lines[0]


def in_process(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """``main(args)`` in this process, as a finished process: its exit status and output."""
    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse's usage errors, --help and --version
        status = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


@pytest.mark.parametrize(
    "args, word",
    [
        (["--learning-rate", "0"], "--learning-rate"),
        (["--learning-rate", "-0.1"], "--learning-rate"),
        (["--learning-rate", "nan"], "--learning-rate"),
        (["--learning-rate", "abc"], "--learning-rate"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--batch-size", "1.5"], "--batch-size"),
        (["--num-steps", "0"], "--num-steps"),
        (["--display-step", "-1"], "--display-step"),
        (["--validation-size", "60000"], "--validation-size"),
        (["--device", "tpu"], "--device"),
        (["--dtype", "float16"], "--dtype"),
        (["--batching", "shuffle"], "--batching"),
        (["--bogus"], "--bogus"),
        (["--epochs", "3", "--num-steps", "100"], "--epochs and --num-steps"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "3", "--batching", "repeat"], "--epochs"),
        (["--momentum", "1"], "--momentum"),
        (["--momentum", "-0.5"], "--momentum"),
        (["--momentum", "x"], "--momentum"),
        (["--nesterov"], "--nesterov"),
        (["--weight-decay", "-1e-4"], "--weight-decay"),
        (["--weight-decay", "inf"], "--weight-decay"),
        (["--learning-rate", "1000", "--weight-decay", "0.01"], "diverge"),
        (["--lr-schedule", "linear"], "--lr-schedule"),
        (["--lr-schedule", "step"], "--step-size"),
        (["--lr-schedule", "exponential", "--gamma", "2"], "--gamma"),
        (["--gamma", "0.5"], "--gamma"),
        (["--lr-schedule", "cosine", "--eta-min", "1"], "--eta-min"),
        (["--average", "-3"], "--average"),
        (["--average", "1000"], "--average 1000"),
        (["--early-stopping", "0"], "--early-stopping"),
        (["--validate", "--validation-size", "0"], "--validation-size"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "1.5"], "--seed"),
        (["--seed", "3"], "--shuffle"),
        (
            ["--shuffle", "--seed", "1" + "0" * 400, "--average", "1" + "0" * 400],
            "--average",
        ),  # huge, yet one line
        (["--learning-rate", "1e300"], "overflows float32"),
        (["--lr-schedule", "inverse", "--gamma", "-1"], "--gamma must be positive"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], word: str, tmp_path: Path, capsys
) -> None:
    proc = in_process(capsys, *args, "--data-dir", str(tmp_path))
    assert_one_line_error(proc, 2, word)
    assert proc.stderr.rstrip().endswith("(see --help)")
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []  # refused before any work


@pytest.mark.parametrize(
    "args",
    [
        ["train"],
        ["evaluate", "m.npz"],
        ["predict", "m.npz", "a.png"],
        ["plot", "m.npz", "--out", "figs"],
        ["download"],
        ["gradcheck"],
    ],
    ids=lambda a: a[0],
)
def test_a_commands_usage_error_names_the_command(args: list[str], capsys) -> None:
    assert_one_line_error(
        in_process(capsys, *args, "--bogus"), 2, f"scratchlr {args[0]}: error:", "--bogus"
    )


def test_version_among_the_training_flags(capsys) -> None:
    """As before the subcommands: ``scratchlr --quiet --version`` prints the version."""
    proc = in_process(capsys, "--quiet", "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("scratchlr ")


def test_a_usage_error_from_a_fresh_process(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("--learning-rate", "0", "--data-dir", str(tmp_path)), 2, "--learning-rate"
    )


def test_device_gpu_without_gpu_is_usage_error(tmp_path: Path, capsys) -> None:
    if gpu_available():
        pytest.skip("this machine has a usable GPU")
    assert_one_line_error(
        in_process(capsys, "--device", "gpu", "--data-dir", str(tmp_path)), 2, "--device gpu"
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["evalute", "m.npz"], "unknown command 'evalute'; did you mean 'evaluate'?"),
        (["trian", "--epochs", "3"], "did you mean 'train'?"),
        (
            ["frobnicate"],
            "unknown command 'frobnicate' (the commands: train, search, evaluate, predict, plot, "
            "serve, download, gradcheck, curvature, exercise)",
        ),
        (["serach", "--learning-rate", "0.1,0.5"], "did you mean 'search'?"),
    ],
)
def test_a_mistyped_command_is_named_with_a_suggestion(args: list[str], words: str, capsys) -> None:
    assert_one_line_error(in_process(capsys, *args), 2, words)


def test_help_lists_every_command_and_train_every_setting(capsys) -> None:
    top = in_process(capsys, "--help")
    assert top.returncode == 0
    for command in (
        "train",
        "search",
        "evaluate",
        "predict",
        "plot",
        "serve",
        "download",
        "gradcheck",
        "curvature",
        "exercise",
    ):
        assert re.search(rf"^\s+{command}\b", top.stdout, re.M), command
    train_help = in_process(capsys, "train", "--help").stdout
    for f in dataclasses.fields(Config):  # one flag per field, its default shown where it has one
        assert flag(f.name) in train_help, f.name
    assert "step size, the seed's 0.1 for each" in " ".join(train_help.split())
    assert in_process(capsys, "--version").stdout.startswith("scratchlr ")


def test_bare_flags_are_the_train_command(mnist_dir: Path, capsys) -> None:
    args = ["--num-steps", "3", "--display-step", "1", "--data-dir", str(mnist_dir), "--quiet"]
    bare = in_process(capsys, *args)
    named = in_process(capsys, "train", *args)
    assert bare.returncode == named.returncode == 0
    assert bare.stdout == named.stdout and bare.stdout.startswith("Initial loss= 2.302585125\n")


def test_out_of_memory_is_one_line_exit_1(mnist_dir: Path, capsys) -> None:
    """A batch of 10^13 rows cannot be allocated: said in one line, exit 1, nothing printed."""
    proc = in_process(
        capsys, "--batch-size", str(10**13), "--num-steps", "1", "--data-dir", str(mnist_dir)
    )
    assert_one_line_error(proc, 1, "out of memory", "batches of 10000000000000 rows")
    assert proc.stdout == ""


@pytest.mark.parametrize("json", [[], ["--json"]], ids=["lines", "json"])
def test_a_closed_pipe_ends_quietly_with_exit_1(
    mnist_dir: Path, tmp_path: Path, json: list[str]
) -> None:
    """``scratchlr predict ... | head -1``: the reader leaves after one line; the writer stops
    with exit 1 and says nothing (no traceback, no 'Exception ignored' at exit)."""
    import numpy as np

    from scratchlr.files import modelfile

    model = tmp_path / "m.npz"
    modelfile.save(
        model,
        modelfile.ModelFile(np.zeros((784, 10), np.float32), np.zeros(10, np.float32), Config()),
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scratchlr",
            "predict",
            str(model),
            str(mnist_dir / "t10k-images-idx3-ubyte.gz"),
            *json,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1 and first.startswith(
        b"[" if json else str(mnist_dir).encode()
    )
    assert err == b""


def test_missing_data_says_where_it_looked(tmp_path: Path) -> None:
    proc = run_cli("--data-dir", str(tmp_path / "empty"))
    assert_one_line_error(
        proc, 1, str(tmp_path / "empty"), "train-images-idx3-ubyte.gz", "--data-dir"
    )
    assert proc.stdout == ""


@pytest.mark.parametrize("how", ["truncated", "corrupted", "missing"])
def test_damaged_data_is_one_line_error(mnist_dir: Path, tmp_path: Path, how: str) -> None:
    d = damaged_copy(mnist_dir, tmp_path / "d", "train_labels", how)
    assert_one_line_error(run_cli("--data-dir", str(d)), 1, "train-labels-idx1-ubyte.gz")


def test_default_run_prints_exactly_the_seed_lines(
    mnist_dir: Path, golden_lines: list[str]
) -> None:
    proc = run_cli("--data-dir", str(mnist_dir), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [re.sub(r"\d", "#", x) for x in lines] == [re.sub(r"\d", "#", x) for x in golden_lines]
    assert lines[-1] == golden_lines[-1] and [x[-6:] for x in lines[2:-1]] == [
        x[-6:] for x in golden_lines[2:-1]
    ]
    summary = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"scratchlr: load \d+\.\d{3} s, train \d+\.\d{3} s \(\d+\.\d us/step\), "
        r"test \d+\.\d{3} s, backend numpy \(cpu\)",
        summary,
    ), summary


def test_data_dir_from_environment(mnist_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCRATCHLR_DATA": str(mnist_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlr", "--num-steps", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("Initial loss= 2.302585125\n"), (
        proc.stderr
    )


@pytest.mark.parametrize("error, status, verdict", [(1e-9, 0, "OK"), (1e-3, 1, "FAILED")])
def test_gradcheck_command_checks_mnist_when_present_and_says_its_verdict(
    mnist_dir: Path,
    mnist_data,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    error: float,
    status: int,
    verdict: str,
) -> None:
    """The command's part: it hands the check the first 32 training images when MNIST is
    there, prints each problem's line and its verdict, and exits 1 above the tolerance. The
    check itself (the numbers) is a stand-in: the MNIST gradient check is test_math_doc's."""
    from scratchlr import gradcheck

    first_32 = mnist_data.train.labels[:32]
    mnist_checks = []

    def check(X, y, W, b, weight_decay: float = 0.0) -> dict[str, float]:
        on_mnist = X.shape == (32, 784) and np.array_equal(y, first_32)
        mnist_checks.append(on_mnist)
        return {"W": error if on_mnist else 1e-12, "b": 1e-12}

    monkeypatch.setattr(gradcheck, "check", check)
    proc = in_process(capsys, "gradcheck", "--data-dir", str(mnist_dir))
    assert proc.returncode == status, proc.stderr
    assert mnist_checks.count(True) == 1 and len(mnist_checks) >= 2  # and the random problems
    assert f"MNIST first 32 examples: max relative error W {error:.3e}" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(f"gradcheck {verdict}: max relative error")


def test_gradcheck_without_data_checks_random_problem(tmp_path: Path) -> None:
    proc = run_cli("gradcheck", "--data-dir", str(tmp_path))
    assert proc.returncode == 0 and "random" in proc.stdout and "MNIST" not in proc.stdout
    assert "checking the random problem only" in proc.stderr


def test_console_script() -> None:
    exe = shutil.which("scratchlr")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("the 'scratchlr' console script is not installed")
        pytest.skip("package not installed (pip install -e .)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("scratchlr ")


def test_history_file_and_validation_lines(mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.csv"
    proc = run_cli(
        "--data-dir",
        str(mnist_dir),
        "--epochs",
        "1",
        "--shuffle",
        "--momentum",
        "0.9",
        "--average",
        "100",
        "--validate",
        "--display-step",
        "200",
        "--history",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Initial loss= 2.302585125" and lines[1].startswith(
        "Step: 0001  loss= 2.302585125"
    )
    assert [line.split()[:3] for line in lines if line.startswith("Validation")] == [
        ["Validation:", "epoch", "1"]
    ]
    assert lines[-1].startswith("Testset Accuracy: ")
    rows = [row.split(",") for row in out.read_text().splitlines()]
    assert rows[0] == "step,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds".split(",")
    assert [row[0] for row in rows[1:]] == [
        "1",
        "200",
        "400",
        "430",
    ]  # the display steps, and the epoch's end
    assert [bool(row[5]) for row in rows[1:]] == [
        False,
        False,
        False,
        True,
    ]  # validated at the epoch's end
    assert rows[-1][:2] == ["430", "1"]
    assert "(" in proc.stderr and "us/step" in proc.stderr  # the summary line, per step of 430


@pytest.mark.parametrize(
    "where, words",
    [("no/h.csv", "no such folder"), (".", "not a file name"), ("", "not a file name")],
)
def test_history_file_is_checked_before_training(
    mnist_dir: Path, tmp_path: Path, where: str, words: str
) -> None:
    target = str(tmp_path / where) if where else ""
    proc = run_cli("--data-dir", str(mnist_dir), "--num-steps", "5", "--history", target)
    assert_one_line_error(proc, 2, "--history", words)
    assert proc.stdout == ""  # refused before training


def test_a_fields_aliases_are_more_names_of_its_flag_in_train_and_search() -> None:
    """A field's metadata ``"aliases"`` (an old name kept working, as ``--step`` for
    ``--implementation``): each parser takes it for the field itself."""
    from scratchlr.cli import args, main

    assert Config.__dataclass_fields__["implementation"].metadata["aliases"] == ("--step",)
    parsers = main.parser()[1]
    trained = parsers["train"].parse_args(["--step", "reference"])
    assert args.config_from(trained).implementation == "reference"
    searched = parsers["search"].parse_args(["--step", "fast,reference"])
    assert searched.given == [("implementation", "fast,reference")]
    with pytest.raises(SystemExit):  # the two names are one flag: given twice
        parsers["search"].parse_args(["--step", "fast", "--implementation", "reference"])


class Clock:
    """A stand-in for the ``time`` module that the progress bar reads, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_a_bar_is_drawn_only_on_a_terminal_once_its_delay_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scratchlr import progress

    clock = Clock()
    monkeypatch.setattr(progress, "time", clock)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    piped = progress.ProgressBar(10, "train")
    piped.update(3)
    assert piped.bar is None and piped.done == 3  # counted, never drawn
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    late = progress.ProgressBar(10, "train", delay=60)
    late.update(3)
    clock.now = 59.9
    late.update(1)
    assert late.bar is None
    clock.now = 60.0
    late.update(1)
    assert late.bar is not None and late.bar.n == 5 and late.bar.total == 10
    late.close()
    late.update(1)
    assert late.bar is None  # erased at the end, and not drawn again


def test_a_bar_moves_in_steps_of_a_thousandth_so_update_1_is_cheap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scratchlr import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = progress.ProgressBar(10_000, "train")  # no delay: drawn at once
    assert bar.bar is not None and bar.bar.n == 0
    for _ in range(9):
        bar.update(1)
    assert bar.bar.n == 0  # counted, not yet handed to tqdm
    bar.update(1)
    assert bar.bar.n == 10 and bar.done == 10
    bar.note("best 0.9")
    assert "best 0.9" in str(bar.bar)
    bar.close()


def test_a_download_moves_the_bar_its_caller_gives_by_the_bytes_it_gets(tmp_path: Path) -> None:
    """The downloader draws nothing itself: it calls ``Settings.progress`` with the file's size
    and name, moves that bar by each chunk's bytes and closes it."""
    from mirror import Mirror

    from scratchlr.dataset import download

    class Bar:
        def __init__(self, total, desc, **looks) -> None:
            self.total = total
            self.desc = desc
            self.looks = looks
            self.done = 0
            self.closed = False
            bars.append(self)

        def update(self, n: int) -> None:
            self.done += n

        def close(self) -> None:
            self.closed = True

    bars: list[Bar] = []
    body = bytes(range(256)) * 1000  # 256000 bytes: several chunks of 64 KiB
    mirror = Mirror({"f.gz": body})
    settings = download.Settings(timeout=(2.0, 2.0), retries=0, progress=Bar)
    try:
        with download.session() as http, open(tmp_path / "f.gz", "wb") as out:
            download.http_get(http, mirror.url + "f.gz", out, settings, "f.gz")
    finally:
        mirror.close()
    assert (tmp_path / "f.gz").read_bytes() == body
    (bar,) = bars
    assert (bar.total, bar.desc, bar.done, bar.closed) == (len(body), "f.gz", len(body), True)
    assert bar.looks == {"unit": "B", "unit_scale": True}


def run_on_a_terminal(*args: str, delay: float) -> tuple[str, str]:
    """Run the CLI, with the training bar's delay ``delay`` s, with stderr on a pseudo-terminal
    of 80 columns: (what the terminal got, stdout)."""
    pty = pytest.importorskip("pty")
    import fcntl
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = (  # python -m scratchlr (its __main__ first: one BLAS thread), with the delay set
        "import sys; from scratchlr.__main__ import main; from scratchlr.cli import training; "
        "training.BAR_DELAY = float(sys.argv[1]); sys.exit(main(sys.argv[2:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(delay), *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    terminal = b""
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        terminal += chunk
    stdout, _ = proc.communicate(timeout=120)
    os.close(master)
    return terminal.decode(errors="replace"), stdout.decode()


def test_a_run_past_the_delay_shows_a_progress_bar_on_a_terminal_and_erases_it(
    mnist_dir: Path,
) -> None:
    """The bar's delay set to 0 and to an hour, so that what shows does not depend on how
    fast the machine trains."""
    flags = ("--data-dir", str(mnist_dir), "--num-steps", "300", "--display-step", "100")
    terminal, stdout = run_on_a_terminal(*flags, delay=0)
    assert "train: " in terminal and "step/s]" in terminal  # tqdm's bar, on stderr
    summary = terminal.rindex("scratchlr: load")
    erased = terminal[terminal.rindex("step/s]", 0, summary) + len("step/s]") : summary]
    assert erased.strip("\r ") == "" and "\r" in erased  # the last bar drawn, then blanked
    assert "step/s" not in stdout and stdout.splitlines()[-1].startswith("Testset Accuracy")
    short, unbarred = run_on_a_terminal(*flags, delay=3600)
    assert "step/s" not in short and "scratchlr: load" in short  # before the delay: no bar
    assert stdout == unbarred  # the log lines, whole and in order, with a bar or without


@pytest.mark.parametrize(
    "command", [[], ["download"], ["gradcheck"]], ids=["train", "download", "gradcheck"]
)
def test_a_data_dir_that_is_a_file_is_said_so(command: list[str], tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    proc = in_process(capsys, *command, "--data-dir", str(a_file))
    assert_one_line_error(proc, 1, f"{a_file} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_an_unsupported_mirror_scheme_is_said_so(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a flag, a usage error (exit 2); in $SCRATCHLR_MIRROR, a data error (exit 1)."""
    proc = in_process(
        capsys, "download", "--data-dir", str(tmp_path / "new"), "--mirror", "ftp://x"
    )
    assert_one_line_error(proc, 2, "mirror ftp://x: the scheme 'ftp' is not supported")
    monkeypatch.setenv("SCRATCHLR_MIRROR", "ftp://y")
    assert_one_line_error(
        in_process(capsys, "download", "--data-dir", str(tmp_path / "new")),
        1,
        "mirror ftp://y: the scheme 'ftp' is not supported",
    )
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_data_folder_is_used_as_it_is(mnist_dir: Path, tmp_path: Path) -> None:
    """A shared copy whose mode bits forbid writing (0555, files 0444) is read, and nothing is
    written there, even by root: no stamp, no .npy cache, no temporary file, no changed mtime."""
    shared = tmp_path / "shared"
    shared.mkdir()
    for f in mnist_dir.glob("*.gz"):
        shutil.copy(f, shared / f.name)
        (shared / f.name).chmod(0o444)
    shared.chmod(0o555)
    try:
        before = {p.name: p.stat().st_mtime_ns for p in [shared, *shared.iterdir()]}
        model = tmp_path / "m.npz"
        assert (
            run_cli("--data-dir", str(shared), "--num-steps", "20", "--save", str(model)).returncode
            == 0
        )
        for args in (["evaluate", str(model)], ["download"]):
            proc = run_cli(*args, "--data-dir", str(shared))
            assert proc.returncode == 0, proc.stderr
        assert {p.name: p.stat().st_mtime_ns for p in [shared, *shared.iterdir()]} == before
    finally:
        shared.chmod(0o755)


def test_ctrl_c_keeps_the_work(mnist_dir: Path, tmp_path: Path) -> None:
    """SIGINT once training has begun: the run stops after that step, prints the test line,
    writes the history and the model (which says where it stopped), and exits 130."""
    from scratchlr.files import history, modelfile

    model = tmp_path / "m.npz"
    record = tmp_path / "h.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scratchlr",
            "--data-dir",
            str(mnist_dir),
            "--epochs",
            "50",
            "--shuffle",
            "--save",
            str(model),
            "--history",
            str(record),
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        while not proc.stdout.readline().startswith("Step: 0200"):  # training is well under way
            pass
        proc.send_signal(signal.SIGINT)  # ~21,000 steps before the end
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    out = "Step: 0200 ...\n" + rest
    assert proc.returncode == 130, err
    stopped = int(re.search(r"^scratchlr: interrupted at step (\d+) of 21500$", err, re.M).group(1))
    assert 1 < stopped < 21500 and out.splitlines()[-1].startswith("Testset Accuracy: ")
    m = modelfile.load(model)
    assert m.interrupted_at == stopped and history.read_csv(record)[-1].step == stopped
    assert f"Testset Accuracy: {m.test_accuracy:.4f}" == out.splitlines()[-1]
    assert run_cli("evaluate", str(model), "--data-dir", str(mnist_dir)).returncode == 0


def test_a_second_ctrl_c_aborts_and_writes_nothing(
    mnist_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two SIGINTs during a step: the second ends the process's work at once, exit 130, and
    neither the model nor the history is written, whole or in part."""
    from scratchlr.cli import training

    real = training.train

    def pressed_twice(*args, stop, **kwargs):
        def twice() -> bool:
            if not stop():
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, in this thread
                os.kill(os.getpid(), signal.SIGINT)
            return stop()

        return real(*args, stop=twice, **kwargs)

    monkeypatch.setattr(training, "train", pressed_twice)
    proc = in_process(
        capsys,
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "50",
        "--save",
        str(tmp_path / "m.npz"),
        "--history",
        str(tmp_path / "h.csv"),
        "--quiet",
    )
    assert_one_line_error(proc, 130, "interrupted")
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is itself again


def test_a_ctrl_c_while_the_files_are_written_leaves_none(
    mnist_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (a plain KeyboardInterrupt again, once training is over) halfway through writing
    a file: exit 130, and no file, whole, torn or temporary, is left."""
    import pathlib

    real = pathlib.Path.write_bytes

    def torn(self: pathlib.Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(pathlib.Path, "write_bytes", torn)
    proc = in_process(
        capsys,
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "20",
        "--save",
        str(tmp_path / "m.npz"),
        "--history",
        str(tmp_path / "h.csv"),
        "--quiet",
    )
    assert (
        proc.returncode == 130
        and proc.stderr.strip().splitlines()[-1] == "scratchlr: error: interrupted"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_ignored_sigint_stays_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started with SIGINT ignored (nohup, a background job) keeps ignoring it."""
    from scratchlr.cli.training import Interrupt

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Interrupt() as interrupted:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and not interrupted()
        with pytest.raises(
            KeyboardInterrupt
        ):  # where it was not ignored: the first is noted, the second raises
            signal.signal(signal.SIGINT, signal.default_int_handler)
            with Interrupt() as interrupted:
                interrupted.handle(signal.SIGINT, None)
                assert interrupted()
                interrupted.handle(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, previous)
