"""``scratchlr search``: trials that are ordinary runs scored on validation, the same rows
wherever they run, a results file that survives Ctrl-C and resumes, one-line refusals."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from test_cli import assert_one_line_error, in_process

from scratchlr.config import from_text, to_text, value_type
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS
from scratchlr.search import results, space

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--epochs", "1", "--shuffle", "--learning-rate", "0.1,0.5", "--momentum", "0,0.9"]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def measured(path: Path) -> list[tuple[str, ...]]:
    """Each row without its seconds (the one column that is not the same bits run to run)."""
    return [tuple(v for k, v in row.items() if k != "seconds") for row in rows(path)]


def test_each_row_is_the_run_alone_with_validate(mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    proc = run_cli("search", "--data-dir", str(mnist_dir), *GRID, "--results", str(out))
    assert proc.returncode == 0, proc.stderr
    found = rows(out)
    assert list(found[0]) == [
        "learning-rate",
        "momentum",
        "val_loss",
        "val_accuracy",
        "steps",
        "seconds",
    ]
    assert [(r["learning-rate"], r["momentum"]) for r in found] == [
        ("0.1", "0.0"),
        ("0.1", "0.9"),
        ("0.5", "0.0"),
        ("0.5", "0.9"),
    ]  # the grid, first axis slowest
    for row in found:
        alone = run_cli(
            "--data-dir",
            str(mnist_dir),
            "--epochs",
            "1",
            "--shuffle",
            "--learning-rate",
            row["learning-rate"],
            "--momentum",
            row["momentum"],
            "--validate",
            "--quiet",
        )
        last = [line for line in alone.stdout.splitlines() if line.startswith("Validation:")][-1]
        assert last == (
            f"Validation: epoch 1  loss= {float(row['val_loss']):.9f}  "
            f"accuracy= {float(row['val_accuracy']):.4f}"
        )
        assert row["steps"] == "430" and float(row["seconds"]) > 0
        assert (
            repr(float(row["val_loss"])) == row["val_loss"]
        )  # in full: it reads back to the same float
    best = max(found, key=lambda r: float(r["val_accuracy"]))
    from scratchlr import train
    from scratchlr.backend import numpy_backend

    data = splits.load(DATASETS["mnist"], str(mnist_dir))
    for row in found:  # the same bits as the run made in this process
        run = train.train(
            data,
            train.Config(
                epochs=1,
                shuffle=True,
                learning_rate=float(row["learning-rate"]),
                momentum=float(row["momentum"]),
                validate=True,
            ),
            numpy_backend(),
            emit=lambda line: None,
        )
        assert (run.history[-1].val_loss, run.history[-1].val_accuracy) == (
            float(row["val_loss"]),
            float(row["val_accuracy"]),
        )
    command = re.search(r"^Best: python -m scratchlr (.*)$", proc.stdout, re.M).group(1).split()
    again = run_cli(*command, "--quiet")
    assert f"accuracy= {float(best['val_accuracy']):.4f}" in again.stdout.splitlines()[-2]
    assert "Testset" not in proc.stdout  # nothing was tested


def test_the_same_rows_here_in_a_pool_and_on_a_dask_cluster(
    mnist_dir: Path, tmp_path: Path
) -> None:
    found = {}
    for name, extra in (("here", []), ("pool", ["--jobs", "2"])):
        proc = run_cli(
            "search",
            "--data-dir",
            str(mnist_dir),
            *GRID,
            "--results",
            str(tmp_path / f"{name}.csv"),
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        found[name] = measured(tmp_path / f"{name}.csv")
    if os.environ.get("CI"):
        import distributed  # the [dist] extra, installed by .ci/run
    else:
        distributed = pytest.importorskip(
            "distributed", reason="the [dist] extra (dask.distributed) is not installed"
        )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
    ) as cluster:
        proc = run_cli(
            "search",
            "--data-dir",
            str(mnist_dir),
            *GRID,
            "--results",
            str(tmp_path / "dask.csv"),
            "--scheduler",
            cluster.scheduler_address,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"on {cluster.scheduler_address}" in proc.stderr
    found["dask"] = measured(tmp_path / "dask.csv")
    assert len(found["here"]) == 4 and found["here"] == found["pool"] == found["dask"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_keeps_the_finished_trials_and_resume_completes_them(
    mnist_dir: Path, tmp_path: Path, jobs: str
) -> None:
    out = tmp_path / "r.csv"
    flags = [
        "search",
        "--data-dir",
        str(mnist_dir),
        "--epochs",
        "3",
        "--shuffle",
        "--learning-rate",
        "0.1,0.2,0.3",
        "--momentum",
        "0,0.5,0.9",
        "--results",
        str(out),
        "--jobs",
        jobs,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchlr", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        while not (out.exists() and len(rows(out)) >= 1):  # one trial finished
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.killpg(
            proc.pid, signal.SIGINT
        )  # as a terminal's Ctrl-C does: the search and its workers
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    kept = out.read_text().splitlines()
    finished = len(kept) - 1
    assert re.search(
        rf"^scratchlr: interrupted after {finished} of 9 trials; --resume runs the rest$",
        stderr,
        re.M,
    )
    assert 1 <= finished < 9 and "Traceback" not in stderr
    assert stdout.startswith(f"The {min(finished, 5)} best of {finished} trials")
    again = run_cli(*flags, "--resume")
    assert again.returncode == 0, again.stderr
    assert f"9 trials ({finished} done)" in again.stderr
    now = out.read_text().splitlines()
    assert (
        len(now) == 10 and len({tuple(line.split(",")[:2]) for line in now[1:]}) == 9
    )  # no duplicate
    assert set(kept) <= set(now)  # the finished rows kept as they were
    grid = [(lr, m) for lr in ("0.1", "0.2", "0.3") for m in ("0.0", "0.5", "0.9")]
    assert [(r["learning-rate"], r["momentum"]) for r in rows(out)] == grid


@pytest.mark.parametrize(
    "args, words",
    [
        (["--bogus", "1"] + GRID, ["unrecognized arguments: --bogus"]),
        (["--learning-rate", "0.1,,0.5"], ["--learning-rate", "empty value"]),
        (
            ["--learning-rate", "0.5,5", "--weight-decay", "0.5"],
            ["trial 2 (--learning-rate 5.0)", "diverge"],
        ),
        (["--learning-rate", "0.1,0.5", "--seed", "1"], ["--seed", "--shuffle"]),
        (["--learning-rate", "0.01:2:log"], ["--learning-rate", "--trials"]),
        (["--learning-rate", "0.1,0.5", "--trials", "3"], ["--trials 3", "only 2 distinct"]),
        (["--momentum", "0,1"], ["trial 2", "--momentum must be in [0, 1)"]),
        (["--learning-rate", "2:1", "--trials", "3"], ["--learning-rate", "LOW < HIGH"]),
        (["--learning-rate", "0:1:log", "--trials", "3"], ["--learning-rate", "above 0"]),
        (["--shuffle", "0:1", "--trials", "3"], ["--shuffle", "number flag"]),
        (["--batch-size", "64,1.5"], ["--batch-size", "'1.5' is not an integer"]),
        (["--learning-rate", "0.1", "--learning-rate", "0.5"], ["--learning-rate given twice"]),
        (["--epochs", "1"], ["nothing to search"]),
        (["--learning-rate", "0.1,0.5", "--resume"], ["--resume", "--results"]),
        (["--learning-rate", "0.1,0.5", "--save", "m.npz"], ["--save", "--test-best"]),
        (["--learning-rate", "0.1,0.5", "--jobs", "0"], ["--jobs must be positive"]),
        (
            ["--learning-rate", "0.1,0.5", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:9"],
            ["alternatives"],
        ),
        (["--learning-rate", "0.1,0.5", "--validation-size", "0"], ["--validation-size above 0"]),
        (
            ["--learning-rate", "0.1,0.5", "--average", "1000"],
            ["--average 1000", "only 1000 steps"],
        ),
        (["--learning-rate", "0.1,0.5", "--validate", "false"], ["--validate is always on"]),
        (["--learning-rate", "0.1,0.5", "--search-seed", "1"], ["--search-seed", "--trials"]),
    ],
)
def test_bad_search_flags_are_one_line_exit_2_and_write_nothing(
    args: list[str], words: list[str], tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kept = [] if "--resume" in args else ["--results", "r.csv"]
    proc = in_process(capsys, "search", "--data-dir", str(tmp_path / "none"), *kept, *args)
    assert_one_line_error(proc, 2, *words)
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []


def test_resume_refuses_a_file_another_search_wrote(
    mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "r.csv"
    assert (
        in_process(
            capsys,
            "search",
            "--data-dir",
            str(mnist_dir),
            "--num-steps",
            "20",
            "--learning-rate",
            "0.1,0.5",
            "--results",
            str(out),
            "--quiet",
        ).returncode
        == 0
    )
    before = out.read_bytes()
    other = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "20",
        "--learning-rate",
        "0.2,0.5",
        "--results",
        str(out),
        "--resume",
        "--quiet",
    )
    assert_one_line_error(other, 1, str(out), "--learning-rate 0.1", "not one of this search's")
    columns = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "20",
        "--momentum",
        "0,0.5",
        "--results",
        str(out),
        "--resume",
        "--quiet",
    )
    assert_one_line_error(columns, 1, str(out), "columns are learning-rate,")
    assert out.read_bytes() == before


def test_the_search_never_reads_the_test_files(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    """With garbage in place of the test files, a search runs, and leaves them be (a check
    would have removed them as bad); only --test-best, at the end, reads them."""
    d = tmp_path / "d"
    d.mkdir()
    for key, f in DATASETS["mnist"].files.items():
        if key.startswith("train"):
            (d / f.name).symlink_to(splits.find(mnist_dir, f))
        else:
            (d / f.name).write_bytes(b"not MNIST")
    grid = [
        "search",
        "--data-dir",
        str(d),
        "--num-steps",
        "20",
        "--learning-rate",
        "0.1,0.5",
        "--quiet",
    ]
    proc = in_process(capsys, *grid)
    assert proc.returncode == 0, proc.stderr
    assert "Test" not in proc.stdout
    assert all(
        (d / f.name).read_bytes() == b"not MNIST"
        for key, f in DATASETS["mnist"].files.items()
        if key.startswith("test")
    )
    assert_one_line_error(in_process(capsys, *grid, "--test-best"), 1, "t10k-")


def test_test_best_scores_the_best_once_on_test_and_keeps_it(
    mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    from scratchlr.files import modelfile

    proc = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        *GRID,
        "--test-best",
        "--save",
        str(tmp_path / "m.npz"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    command = re.search(r"^Best: python -m scratchlr (.*)$", proc.stdout, re.M).group(1).split()
    assert command == [
        "--epochs",
        "1",
        "--shuffle",
        "--learning-rate",
        "0.1",
        "--momentum",
        "0.9",
        "--validate",
        "--device",
        "cpu",
        "--data-dir",
        str(mnist_dir),
    ]
    alone = in_process(capsys, *command, "--quiet").stdout.splitlines()
    tested = re.search(
        r"^Test accuracy of the best \(the test split, read once\): (\S+)$", proc.stdout, re.M
    )
    assert f"Testset Accuracy: {tested.group(1)}" == alone[-1]
    m = modelfile.load(tmp_path / "m.npz")
    assert m.config == space.config(
        {"epochs": 1, "shuffle": True, "learning_rate": 0.1, "momentum": 0.9}
    )
    assert f"accuracy= {m.validation_accuracy:.4f}" in alone[
        -2
    ] and f"{m.test_accuracy:.4f}" == tested.group(1)


# The parts, on their own.


def test_a_grid_is_the_product_of_the_axes_in_the_order_given() -> None:
    axes = [
        space.parse_axis("momentum", "0,0.9"),
        space.parse_axis("batch_size", "64,128,256"),
        space.parse_axis("shuffle", "true"),
    ]
    trials = space.grid(axes)
    assert len(trials) == 6 and trials[0] == {"momentum": 0.0, "batch_size": 64, "shuffle": True}
    assert [(t["momentum"], t["batch_size"]) for t in trials] == [
        (m, b) for m in (0.0, 0.9) for b in (64, 128, 256)
    ]
    assert all(isinstance(t["batch_size"], int) for t in trials)


def test_samples_stay_in_their_ranges_ints_stay_ints_and_a_seed_repeats_them() -> None:
    axes = [
        space.parse_axis("learning_rate", "0.01:2:log"),
        space.parse_axis("batch_size", "32:512:log"),
        space.parse_axis("weight_decay", "0:0.001"),
        space.parse_axis("epochs", "1,2,3"),
    ]
    trials = space.samples(axes, 400, seed=7)
    assert trials == space.samples(axes, 400, seed=7) and trials != space.samples(axes, 400, seed=8)
    lr = np.array([t["learning_rate"] for t in trials])
    bs = [t["batch_size"] for t in trials]
    assert all(isinstance(b, int) and 32 <= b <= 512 for b in bs) and {32, 512} & set(bs)
    assert 0.01 <= lr.min() and lr.max() <= 2
    assert (
        abs(np.median(np.log(lr)) - np.log(np.sqrt(0.01 * 2))) < 0.3
    )  # uniform in log: median at the geometric mean
    assert all(0 <= t["weight_decay"] <= 0.001 for t in trials) and {
        t["epochs"] for t in trials
    } == {1, 2, 3}
    assert len({tuple(t.values()) for t in trials}) == 400  # distinct


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("shuffle", "true", True),
        ("nesterov", "no", False),
        ("average", "none", None),
        ("average", "0", 0),
        ("learning_rate", "1e-3", 0.001),
        ("lr_schedule", "cosine", "cosine"),
        ("seed", "3", 3),
        ("batching", "epoch", "epoch"),
        ("batching", "none", None),
    ],
)
def test_values_read_as_the_trainer_takes_them(name: str, text: str, expected) -> None:
    got = from_text(name, text)
    assert got == expected and type(got) is type(expected)


def test_every_training_flag_takes_a_list() -> None:
    """Each Config field's default, written as a CSV cell, reads back as itself."""
    for name, f in space.FIELDS.items():
        assert from_text(name, to_text(f.default)) == f.default, name
        assert value_type(f) in (bool, int, float, str), name


def test_the_results_file_reads_back_to_the_same_bits(tmp_path: Path) -> None:
    settings = [
        {"learning_rate": 0.1 + 0.2, "average": None, "nesterov": True},
        {"learning_rate": math.pi, "average": 430, "nesterov": False},
    ]
    outcomes = [
        results.Outcome(0.1 / 3, np.float32(0.9231).item(), 430, 1 / 7),
        results.Outcome(2.0, 0.5, 1, 0.25),
    ]
    varying = ["learning_rate", "average", "nesterov"]
    results.write(tmp_path / "r.csv", list(zip(settings, outcomes)), varying, {"--epochs": "1"})
    assert results.read(tmp_path / "r.csv", varying) == list(zip(settings, outcomes))
    names, table = results.read_table(tmp_path / "r.csv")
    assert names == ["learning-rate", "average", "nesterov"] and table[1]["average"] == 430
    assert results.best(list(zip(settings, outcomes)), 1)[0][0] == settings[0]


def test_the_best_are_by_accuracy_then_loss() -> None:
    o = results.Outcome
    found = [
        ({"i": 0}, o(0.3, 0.9, 1, 1)),
        ({"i": 1}, o(0.2, 0.92, 1, 1)),
        ({"i": 2}, o(0.1, 0.92, 1, 1)),
        ({"i": 3}, o(0.1, 0.92, 1, 1)),
    ]
    assert [s["i"] for s, _ in results.best(found, 3)] == [2, 3, 1]


def test_search_takes_every_training_flag() -> None:
    from scratchlr.cli.main import parser
    from scratchlr.config import flag

    options = parser()[1][
        "search"
    ]._option_string_actions  # argparse's table of the command's flags
    assert {flag(name) for name in space.FIELDS} <= set(options)
    assert {
        "--trials",
        "--search-seed",
        "--jobs",
        "--scheduler",
        "--results",
        "--resume",
        "--test-best",
        "--save",
    } <= set(options)


def test_a_trial_that_fails_is_named_and_the_finished_ones_kept(
    mnist_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scratchlr.search import trials

    real = trials.run_trial

    def third_fails(settings, data_dir):
        if settings["learning_rate"] == 0.3:
            raise MemoryError
        return real(settings, data_dir)

    monkeypatch.setattr(trials, "run_trial", third_fails)
    proc = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "20",
        "--learning-rate",
        "0.1,0.2,0.3,0.4",
        "--results",
        str(tmp_path / "r.csv"),
        "--quiet",
    )
    assert_one_line_error(proc, 1, "trial 3 (--learning-rate 0.3): out of memory")
    assert [r["learning-rate"] for r in rows(tmp_path / "r.csv")] == ["0.1", "0.2"]


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["--scheduler", "localhost"], 2, "not a scheduler's address"),
        (["--scheduler", "tls://127.0.0.1:8786"], 2, "not a scheduler's address"),
        (["--scheduler", "127.0.0.1:70000"], 2, "not a scheduler's address"),
        (["--scheduler", "tcp://127.0.0.1:9"], 1, "no Dask scheduler answers there"),
    ],
)
def test_a_scheduler_that_is_not_there_is_one_line(
    mnist_dir: Path, args: list[str], status: int, words: str, capsys
) -> None:
    pytest.importorskip(
        "distributed", reason="the [dist] extra (dask.distributed) is not installed"
    )
    proc = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "20",
        "--learning-rate",
        "0.1,0.5",
        "--quiet",
        *args,
    )
    assert_one_line_error(proc, status, words)


def test_without_dask_the_scheduler_says_what_to_install(
    mnist_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    proc = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--learning-rate",
        "0.1,0.5",
        "--scheduler",
        "tcp://127.0.0.1:8786",
    )
    assert_one_line_error(proc, 1, "the [dist] extra", "pip install distributed")


def test_resume_refuses_a_file_whose_fixed_flags_differ(
    mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "r.csv"
    grid = [
        "search",
        "--data-dir",
        str(mnist_dir),
        "--learning-rate",
        "0.1,0.5",
        "--results",
        str(out),
        "--quiet",
    ]
    assert in_process(capsys, *grid, "--num-steps", "20").returncode == 0
    assert_one_line_error(
        in_process(capsys, *grid, "--num-steps", "30", "--resume"),
        1,
        "ran with --num-steps 20, not 30",
    )
    assert_one_line_error(
        in_process(capsys, *grid, "--num-steps", "20", "--momentum", "0.9", "--resume"),
        1,
        "ran with --momentum 0.0, not 0.9",
    )
    assert (
        in_process(capsys, *grid, "--num-steps", "20", "--momentum", "0", "--resume").returncode
        == 0
    )  # the default
    # as a search before --implementation, --optimizer and --dataset wrote it: still resumed
    shared = tmp_path / "r.csv.json"
    kept = json.loads(shared.read_text())
    kept["--step"] = kept.pop("--implementation")
    del kept["--optimizer"]
    del kept["--dataset"]
    shared.write_text(json.dumps(kept))
    assert in_process(capsys, *grid, "--num-steps", "20", "--resume").returncode == 0
    assert_one_line_error(
        in_process(capsys, *grid, "--num-steps", "20", "--step", "reference", "--resume"),
        1,
        "ran with --implementation fast, not reference",
    )
    shared.unlink()
    assert_one_line_error(
        in_process(capsys, *grid, "--num-steps", "20", "--resume"), 1, "r.csv.json"
    )
    assert len(rows(out)) == 2


def test_unset_and_boolean_settings_as_axes(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.csv"
    proc = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--num-steps",
        "20",
        "--momentum",
        "0.9",
        "--average",
        "none,0",
        "--nesterov",
        "true,false",
        "--results",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert [(r["average"], r["nesterov"]) for r in rows(out)] == [
        ("", "true"),
        ("", "false"),
        ("0", "true"),
        ("0", "false"),
    ]
    assert len({r["val_loss"] for r in rows(out)}) == 4  # four different runs


def test_early_stopping_keeps_the_best_validation() -> None:
    from scratchlr.files.history import Record
    from scratchlr.search import trials

    def record(step: int, acc: float) -> Record:
        return Record(step, 0.0, 0.3, 0.9, 0.3, acc, 0.1, 1.0)

    history = [record(1, 0.90), record(2, None), record(3, 0.92), record(4, 0.91), record(5, 0.92)]
    assert trials.kept(history, None).step == 5
    assert (
        trials.kept(history, 2).step == 3
    )  # the first of the best: the model early stopping keeps


def test_ctrl_c_as_the_workers_start_stops_the_search_cleanly(
    mnist_dir: Path, tmp_path: Path
) -> None:
    """A Ctrl-C to the process group just as the pool starts: no worker dies, no traceback;
    the search stops before (or after) its first trials and exits 130."""
    out = tmp_path / "r.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scratchlr",
            "search",
            "--data-dir",
            str(mnist_dir),
            "--epochs",
            "3",
            "--shuffle",
            "--learning-rate",
            "0.1,0.2,0.3,0.4",
            "--momentum",
            "0,0.9",
            "--jobs",
            "2",
            "--results",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert "on 2 worker processes" in proc.stderr.readline()  # printed as the pool starts
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    finished = len(rows(out)) if out.exists() else 0
    assert finished <= 2 and f"interrupted after {finished} of 8 trials" in stderr
