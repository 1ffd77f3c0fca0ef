"""Whether the data layer's and the search's speed devices pay, measured as a user meets them.

    python benchmarks/plumbing.py --data-dir data/mnist [--rounds 10] [--quick]
                                  [--only cache,prefault,loaded]

Each device is measured against the same package with the device patched out, in this
script's own child processes (the package is not changed):
- ``cache``: the ``.npy`` cache with its verification stamps (``mnist.cached_array``,
  ``store``'s stamps), against ``stamps`` (the stamps kept, no ``.npy``: each command
  decompresses without hashing) and ``verify`` (neither: each command parses and MD5-checks
  each file it needs, once). Commands: the seed run, ``evaluate``, ``predict`` (which reads no
  MNIST: a control), ``serve`` until it says "Serving", and a ``search`` of two trials;
- ``prefault``: ``mnist.prefault`` (MADV_POPULATE_READ) against none, on the seed run and the
  README's recipe, with the page cache warm, and cold: the pages of this script's own copies
  dropped (``posix_fadvise(DONTNEED)``) before each run, which touches no one else's files;
- ``loaded``: the search's per-process arrays (``trials.LOADED``) against a load per trial,
  on a search of 8 trials at ``--jobs 1`` and ``--jobs 2``, on the cached folder and on a
  read-only one that holds the ``.gz`` files alone (where nothing can be cached).
The four ``.gz`` files are copied into temporary folders (:func:`folders`); each case runs
once under each variant to warm up before the rounds. The
rounds go through the variants in turn, every other round in reverse order (ABBA). Times: the
command's wall time (Python's start included), and its load time: the time spent in
``download.fetch_missing`` and ``mnist.load_arrays``, summed over its processes. Each ratio is
the median over rounds of that round's ratio, device / without, with its range over rounds.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as python -m scratchlr does
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402

from scratchlr.cli import training  # noqa: E402
from scratchlr.dataset import download, mnist, store  # noqa: E402
from scratchlr.search import trials  # noqa: E402

VARIANT = "PLUMBING_VARIANT"  # set: this process is a child, run with that variant
REPORT = "PLUMBING_REPORT"  # the file each timed call appends a JSON line to
RECIPE = (  # the README's
    "--shuffle --batching epoch --batch-size 512 --num-steps 300 --momentum 0.93 "
    "--learning-rate 1.1 --average 80 --weight-decay 1e-5"
).split()
TRIALS = (  # 8 short trials: 4 per worker at --jobs 2
    "--shuffle --batching epoch --batch-size 512 --num-steps 300 "
    "--learning-rate 0.5,0.8,1.1,1.4 --momentum 0.9,0.93"
).split()
DEVICES = ("cache", "prefault", "loaded")


# In a child: the variants, and the timing of the loads.


def decompressed(path: Path, f: mnist.MNISTFile) -> np.ndarray:
    """``cached_array`` with no ``.npy``: parse ``path``, hashing it only when not stamped."""
    stamped = store.is_stamped(path, f.md5)
    array = mnist.read_verified(path, f)
    if not stamped:
        store.stamp(path, f.md5)
    return array


def present(directory: Path, f: mnist.MNISTFile) -> str | None:
    """``download.cached`` with no stamps: a file there counts; the loader verifies it."""
    return None if mnist.find(directory, f) else ""


def unchanged(array: np.memmap) -> np.memmap:
    """``mnist.prefault`` patched out."""
    return array


def uncached(data_dir: str | None, validation_size: int, test: bool = False) -> mnist.MNIST:
    """``trials.data`` with no per-process arrays: loaded at every call."""
    keys = tuple(mnist.FILES) if test else mnist.TRAIN_FILES
    return mnist.split(mnist.load_arrays(mnist.data_dir(data_dir), keys), validation_size)


def faults() -> int:
    """The page faults of this process so far, minor and major."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, appending its name, this process's id, its seconds and the page faults it took
    to the report file."""

    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        before = faults()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            line = {"pid": os.getpid(), "call": name, "s": seconds, "faults": faults() - before}
            with open(os.environ[REPORT], "a") as out:
                out.write(json.dumps(line) + "\n")

    return call


def patch(variant: str) -> None:
    """Take out of this process the device that ``variant`` goes without, and time the loads."""
    if variant == "stamps":
        mnist.cached_array = decompressed
    if variant == "verify":
        mnist.cached_array = mnist.read_verified
        download.cached = present
    if variant == "no-prefault":
        mnist.prefault = unchanged
    if variant == "no-loaded":
        trials.data = uncached
    download.fetch_missing = timed("fetch_missing", download.fetch_missing)
    mnist.load_arrays = timed("load_arrays", mnist.load_arrays)
    training.train = timed("train", training.train)  # the training command's, for its faults


def child() -> int:
    """Run scratchlr's command line on this process's arguments, patched as the variant says."""
    from scratchlr.cli.main import main as scratchlr

    patch(os.environ[VARIANT])
    # Python's own SIGINT handler, as at a terminal: serve is stopped with SIGINT, and a job
    # started in the background of a shell without job control starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return scratchlr(sys.argv[1:])


# In the parent: the runs.


def run(
    variant: str, folder: Path, args: list[str], serve: bool = False, cold: bool = False
) -> dict[str, float]:
    """One command in a fresh child process: its wall seconds, load seconds (summed over its
    processes), the number of loads, and its training seconds where it prints them. ``serve``:
    the wall time is to its "Serving" line, then it is stopped with SIGINT. ``cold``: the
    pages of ``folder``'s files are dropped from the page cache first."""
    if cold:
        drop_pages(folder)
    report = folder.parent / f"report-{variant}.jsonl"
    report.unlink(missing_ok=True)
    env = {**os.environ, VARIANT: variant, REPORT: str(report), "SCRATCHLR_DATA": str(folder)}
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    start = time.perf_counter()
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=folder.parent
    )
    if serve:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith("Serving"):
                break
        wall = time.perf_counter() - start
        p.send_signal(signal.SIGINT)
        try:
            err = p.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            p.kill()
            raise SystemExit("plumbing: serve did not stop on SIGINT within 60 s") from None
    else:
        err = p.communicate()[1]
        wall = time.perf_counter() - start
    if p.returncode not in ((0, 130) if serve else (0,)):  # 130: SIGINT before serve_forever
        raise SystemExit(f"plumbing: {variant} {' '.join(args)} failed: {err.strip()[-300:]}")
    lines = report.read_text().splitlines() if report.exists() else []  # predict loads nothing
    calls = [json.loads(line) for line in lines]
    result = {"wall": wall, "load": sum(c["s"] for c in calls if c["call"] != "train")}
    result["loads"] = sum(c["call"] == "load_arrays" for c in calls)
    result["faults"] = sum(c["faults"] for c in calls if c["call"] == "train")
    summary = [line for line in err.splitlines() if ", train " in line and " s (" in line]
    if summary:
        result["train"] = float(summary[-1].split(", train ")[1].split()[0])
        result["load+train"] = result["load"] + result["train"]  # what the prefault moves between
    return result


def drop_pages(folder: Path) -> None:
    """Drop the pages of ``folder``'s files from the page cache (only these files, only
    where no process maps them)."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def folders(source: Path, tmp: Path) -> dict[str, Path]:
    """The data folders, each with a copy of the four ``.gz`` files: ``cache`` with its stamps
    and ``.npy`` files, ``stamps`` with stamps alone, ``verify`` and ``read-only`` with
    nothing else, the last one's mode bits forbidding writes (scratchlr writes nothing there)."""
    made = {}
    for place in ("cache", "stamps", "verify", "read-only"):
        folder = tmp / place
        folder.mkdir()
        for f in mnist.FILES.values():
            shutil.copyfile(source / f.name, folder / f.name)
        if place in ("cache", "stamps"):
            run(place, folder, ["download", "--quiet"])  # as stamps: no .npy written
        made[place] = folder
    made["read-only"].chmod(0o555)
    return made


def rounds(
    n: int, variants: list[str], cases: dict[str, Callable[[str], dict[str, float]]]
) -> dict[tuple[str, str], list[dict[str, float]]]:
    """``n`` rounds of every case under every variant, the variants' order reversed every
    other round (ABBA), after one warm-up run of each; {(case, variant): one result a round}."""
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for case, measure in cases.items():
        for variant in variants:
            measure(variant)
            results[(case, variant)] = []
    for r in range(n):
        order = variants if r % 2 == 0 else variants[::-1]
        for case, measure in cases.items():
            for variant in order:
                results[(case, variant)].append(measure(variant))
        print(f"round {r + 1} of {n}", file=sys.stderr)
    return results


def ratio(ours: list[dict[str, float]], theirs: list[dict[str, float]], key: str) -> str:
    """The median over rounds of each round's ratio ours / theirs of ``key``, and its range."""
    if not all(b[key] for b in theirs):
        return "no load"
    per = sorted(a[key] / b[key] for a, b in zip(ours, theirs))
    return f"{statistics.median(per):.3f} ({per[0]:.3f}–{per[-1]:.3f})"


def median(runs: list[dict[str, float]], key: str) -> str:
    """The median of ``key`` over the runs: load in ms, other times in s, counts whole."""
    value = statistics.median(r[key] for r in runs)
    if key in ("loads", "faults"):
        return f"{value:.0f}"
    return f"{1e3 * value:.1f}" if key == "load" else f"{value:.3f}"


def table(
    results: dict[tuple[str, str], list[dict[str, float]]], device: str, keys: list[str]
) -> str:
    """A Markdown table: per case and variant, the medians of ``keys``, and the ratios
    ``device`` / variant of the times among them (not of the counts)."""
    heads = {"loads": "loads", "load": "load ms", "train": "train s", "wall": "wall s"}
    heads["faults"] = "faults in training"
    heads["load+train"] = "load+train s"
    times = [k for k in keys if k not in ("loads", "faults")]
    rows = [
        "| case | variant | "
        + " | ".join(heads[k] for k in keys)
        + " | "
        + " | ".join(f"{device} / variant, {heads[k].split()[0]}" for k in times)
        + " |",
        "|---|---|" + "---:|" * (len(keys) + len(times)),
    ]
    for (case, variant), runs in results.items():
        ours = results[(case, device)]
        cells = [median(runs, k) for k in keys]
        cells += ["" if variant == device else ratio(ours, runs, k) for k in times]
        rows.append(f"| {case} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def epoch_reads(npy: Path, prefault: bool, cold: bool) -> float:
    """Seconds to map the training images' cache (and prefault it, if asked) and copy out the
    first epoch's batches of 128 in the seed's order: the reads the prefault speeds up."""
    if cold:
        drop_pages(npy.parent)
    start = time.perf_counter()
    images = np.load(npy, mmap_mode="r")
    if prefault:
        mnist.prefault(images)
    rows = images.reshape(len(images), -1)
    batch = np.empty((128, rows.shape[1]), np.float32)
    for i in range(mnist.DEFAULT_VALIDATION_SIZE, len(rows) - 128, 128):
        np.copyto(batch, rows[i : i + 128])
    return time.perf_counter() - start


def reads_table(npy: Path, n: int) -> str:
    """A Markdown table of :func:`epoch_reads` with and without the prefault, warm and cold,
    in this process, alternating, ``n`` rounds: medians, and the median of per-round ratios."""
    rows = [
        "| page cache | with prefault ms | without ms | with / without |",
        "|---|---:|---:|---:|",
    ]
    for cold in (False, True):
        seconds: dict[bool, list[float]] = {True: [], False: []}
        for r in range(n):
            for prefault in (True, False) if r % 2 == 0 else (False, True):
                seconds[prefault].append(epoch_reads(npy, prefault, cold))
        ours = [{"s": s} for s in seconds[True]]
        theirs = [{"s": s} for s in seconds[False]]
        rows.append(
            f"| {'cold' if cold else 'warm'} | {1e3 * statistics.median(seconds[True]):.1f} | "
            f"{1e3 * statistics.median(seconds[False]):.1f} | {ratio(ours, theirs, 's')} |"
        )
    return "\n".join(rows)


def blas() -> str:
    """The BLAS threadpoolctl finds, and the kernel it picked."""
    from threadpoolctl import threadpool_info

    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return "no BLAS found by threadpoolctl"
    return f"{info[0]['internal_api']} {info[0]['version']}, kernel {info[0].get('architecture')}"


def measure(devices: list[str], n: int, where: dict[str, Path]) -> None:
    """Run the rounds of each of ``devices`` on the folders ``where``; print their tables."""
    model = where["cache"].parent / "model.npz"
    run("cache", where["cache"], ["--quiet", "--save", str(model)])
    image = where["cache"].parent / "digit.npy"
    np.save(image, np.load(where["cache"] / "t10k-images-idx3-ubyte.npy")[0])

    def command(args: list[str], place: str | None = None, **how: bool) -> Callable:
        """A case: ``args`` run in the folder ``place`` (None: the variant's own)."""
        return lambda variant: run(variant, where[place or variant], args, **how)

    if "cache" in devices:
        serve = ["serve", str(model), "--port", "0", "--quiet"]
        cases = {
            "seed run": command(["--quiet"]),
            "evaluate": command(["evaluate", str(model)]),
            "predict": command(["predict", str(model), str(image)]),
            "serve, to listening": command(serve, serve=True),
            "search, 2 trials": command(["search", "--quiet", "--learning-rate", "0.1,0.2"]),
        }
        results = rounds(n, ["cache", "stamps", "verify"], cases)
        print(f"### The .npy cache and its stamps ({n} rounds)\n")
        print(table(results, "cache", ["load", "wall"]) + "\n")
    if "prefault" in devices:
        cases = {
            "seed run, warm": command(["--quiet"], "cache"),
            "recipe, warm": command(["--quiet", *RECIPE], "cache"),
            "seed run, cold": command(["--quiet"], "cache", cold=True),
            "recipe, cold": command(["--quiet", *RECIPE], "cache", cold=True),
        }
        results = rounds(n, ["prefault", "no-prefault"], cases)
        print(f"### The prefault ({n} rounds)\n")
        print(table(results, "prefault", ["faults", "load", "train", "load+train", "wall"]) + "\n")
        npy = where["cache"] / "train-images-idx3-ubyte.npy"
        print(f"The first epoch's reads, in one process ({3 * n} rounds):\n")
        print(reads_table(npy, 3 * n) + "\n")
    if "loaded" in devices:
        cases = {
            f"search, 8 trials, --jobs {jobs}, {place}": command(
                ["search", "--quiet", "--jobs", str(jobs), *TRIALS], place
            )
            for place in ("cache", "read-only")
            for jobs in (1, 2)
        }
        results = rounds(n, ["loaded", "no-loaded"], cases)
        print(f"### The search's per-process arrays ({n} rounds)\n")
        print(table(results, "loaded", ["loads", "load", "wall"]) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist", help="where the four MNIST .gz files are")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="2 rounds: a check that it all runs")
    p.add_argument("--only", help=f"comma-separated devices (default: all of {', '.join(DEVICES)})")
    args = p.parse_args()
    source = Path(args.data_dir)
    devices = args.only.split(",") if args.only else list(DEVICES)
    if any(d not in DEVICES for d in devices):
        print(f"plumbing: error: --only: the devices are {', '.join(DEVICES)}", file=sys.stderr)
        return 2
    missing = [f.name for f in mnist.FILES.values() if not (source / f.name).is_file()]
    if missing:
        print(f"plumbing: {source}: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    n = 2 if args.quick else args.rounds
    print(f"machine: {machine()}; {blas()}\n")
    with tempfile.TemporaryDirectory(prefix="plumbing-") as name:
        where = folders(source, Path(name))
        try:
            measure(devices, n, where)
        finally:
            where["read-only"].chmod(0o755)  # so that the folder can be removed
    return 0


if __name__ == "__mp_main__" and VARIANT in os.environ:  # a search's worker: the same patches
    patch(os.environ[VARIANT])
elif __name__ == "__main__":
    sys.exit(child() if VARIANT in os.environ else main())
