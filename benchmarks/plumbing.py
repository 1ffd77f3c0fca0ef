"""Whether the data layer's ``.npy`` cache and its stamps pay, measured as a user meets them.

    python benchmarks/plumbing.py --data-dir data/mnist [--rounds 10] [--quick]

The cache is measured against the same package with it patched out, in this script's own
child processes (the package is not changed). The variants:
- ``cache``: as shipped (``splits.cached_array``, ``store``'s stamps);
- ``stamps``: the stamps kept, no ``.npy``: each command decompresses the files it needs,
  without hashing them;
- ``verify``: neither: each command parses and MD5-checks each file it needs, once.
The commands: the seed run, ``evaluate``, ``predict`` (which reads no MNIST: a control),
``serve`` until it says "Serving", and a ``search`` of two trials.
The four ``.gz`` files are copied into temporary folders (:func:`folders`), one per variant;
each command runs once under each variant to warm up before the rounds. The rounds go through
the variants in turn, every other round in reverse order (ABBA). Times: the command's wall time
(Python's start included), and its load time: the time spent in ``download.fetch_missing`` and
``splits.load_arrays``, summed over its processes. Each ratio is the median over rounds of that
round's ratio, cache / variant, with its range over rounds. Prints Markdown tables.

The prefault and the search's per-process arrays, which this script also measured at commit
7c12cbe, were removed from the package on that measurement (docs/benchmarks.md, "Plumbing").
"""

from __future__ import annotations

import argparse
import json
import os
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

from scratchlr.dataset import download, splits, store  # noqa: E402
from scratchlr.dataset.records import DATASETS, Dataset  # noqa: E402

MNIST = DATASETS["mnist"]
VARIANT = "PLUMBING_VARIANT"  # set: this process is a child, run with that variant
REPORT = "PLUMBING_REPORT"  # the file each timed call appends a JSON line to
VARIANTS = {"cache": "cache", "stamps": "stamps only", "verify": "verify"}  # name: heading

Result = dict[str, float]
Results = dict[tuple[str, str], list[Result]]


# In a child: the variants, and the timing of the loads.


def decompressed(path: Path, dataset: Dataset, key: str) -> np.ndarray:
    """``cached_array`` with no ``.npy``: parse ``path``, hashing it only when not stamped."""
    md5 = dataset.files[key].md5
    stamped = store.is_stamped(path, md5)
    array = splits.read_verified(path, dataset, key)
    if not stamped:
        store.stamp(path, md5)
    return array


def present(directory: Path, dataset: Dataset, key: str) -> str | None:
    """``download.cached`` with no stamps: a file there counts; the loader verifies it."""
    return None if splits.find(directory, dataset.files[key]) else ""


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, appending its name, this process's id and its seconds to the report file."""

    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            line = {"pid": os.getpid(), "call": name, "s": time.perf_counter() - start}
            with open(os.environ[REPORT], "a") as out:
                out.write(json.dumps(line) + "\n")

    return call


def patch(variant: str) -> None:
    """Take out of this process what ``variant`` goes without, and time the loads."""
    if variant == "stamps":
        splits.cached_array = decompressed
    if variant == "verify":
        splits.cached_array = splits.read_verified
        download.cached = present
    download.fetch_missing = timed("fetch_missing", download.fetch_missing)
    splits.load_arrays = timed("load_arrays", splits.load_arrays)


def child() -> int:
    """Run scratchlr's command line on this process's arguments, patched as the variant says."""
    from scratchlr.cli.main import main as scratchlr

    patch(os.environ[VARIANT])
    # Python's own SIGINT handler, as at a terminal: serve is stopped with SIGINT, and a job
    # started in the background of a shell without job control starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return scratchlr(sys.argv[1:])


# In the parent: the runs.


def run(variant: str, folder: Path, args: list[str], serve: bool = False) -> Result:
    """One command in a fresh child process: its wall seconds and its load seconds (summed
    over its processes). ``serve``: the wall time is to its "Serving" line, then it is stopped
    with SIGINT."""
    report = folder.parent / f"report-{variant}.jsonl"
    report.unlink(missing_ok=True)
    env = {**os.environ, VARIANT: variant, REPORT: str(report), MNIST.env: str(folder)}
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
    return {"wall": wall, "load": sum(json.loads(line)["s"] for line in lines)}


def folders(source: Path, tmp: Path) -> dict[str, Path]:
    """A data folder per variant, each with a copy of the four ``.gz`` files: ``cache`` with
    its stamps and ``.npy`` files, ``stamps`` with stamps alone, ``verify`` with nothing else."""
    made = {}
    for variant in VARIANTS:
        folder = tmp / variant
        folder.mkdir()
        for f in MNIST.files.values():
            shutil.copyfile(source / f.name, folder / f.name)
        if variant != "verify":
            run(variant, folder, ["download", "--quiet"])  # as stamps: no .npy written
        made[variant] = folder
    return made


def rounds(n: int, cases: dict[str, Callable[[str], Result]]) -> Results:
    """``n`` rounds of every case under every variant, the variants' order reversed every
    other round (ABBA), after one warm-up run of each; {(case, variant): one result a round}."""
    variants = list(VARIANTS)
    results: Results = {}
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


def ratio(ours: list[Result], theirs: list[Result], key: str) -> str:
    """The median over rounds of each round's ratio ours / theirs of ``key``, and its range."""
    if not all(b[key] for b in theirs):
        return "no load"
    per = sorted(a[key] / b[key] for a, b in zip(ours, theirs))
    return f"{statistics.median(per):.3f} ({per[0]:.3f}–{per[-1]:.3f})"


def medians(results: Results, case: str, key: str) -> str:
    """The medians of ``key`` for ``case`` under each variant: load in ms, wall in s."""
    values = [statistics.median(r[key] for r in results[(case, v)]) for v in VARIANTS]
    if key == "load":
        return ", ".join(f"{1e3 * value:.1f}" for value in values)
    return ", ".join(f"{value:.3f}" for value in values)


def table(results: Results, cases: list[str]) -> str:
    """A Markdown table: per case, the medians of load and wall under each variant, and the
    ratios cache / each other variant of each."""
    others = [v for v in VARIANTS if v != "cache"]
    names = ", ".join(VARIANTS.values())
    heads = [f"load ms: {names}", f"wall s: {names}"]
    heads += [f"cache / {VARIANTS[v]}, {key}" for key in ("wall", "load") for v in others]
    rows = ["| command | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for case in cases:
        cells = [medians(results, case, "load"), medians(results, case, "wall")]
        ours = results[(case, "cache")]
        cells += [ratio(ours, results[(case, v)], key) for key in ("wall", "load") for v in others]
        rows.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def blas() -> str:
    """The BLAS threadpoolctl finds, and the kernel it picked."""
    from threadpoolctl import threadpool_info

    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return "no BLAS found by threadpoolctl"
    return f"{info[0]['internal_api']} {info[0]['version']}, kernel {info[0].get('architecture')}"


def measure(n: int, where: dict[str, Path]) -> None:
    """Run the rounds on the folders ``where`` and print their table."""
    model = where["cache"].parent / "model.npz"
    run("cache", where["cache"], ["--quiet", "--save", str(model)])
    image = where["cache"].parent / "digit.npy"
    np.save(image, np.load(where["cache"] / "t10k-images-idx3-ubyte.npy")[0])

    def command(args: list[str], serve: bool = False) -> Callable[[str], Result]:
        """A case: ``args`` run in the variant's own folder."""
        return lambda variant: run(variant, where[variant], args, serve)

    cases = {
        "seed run": command(["--quiet"]),
        "`evaluate`": command(["evaluate", str(model)]),
        "`predict` (reads no MNIST)": command(["predict", str(model), str(image)]),
        "`serve`, to its URL (test files only)": command(
            ["serve", str(model), "--port", "0", "--quiet"], serve=True
        ),
        "`search`, 2 trials (training files only)": command(
            ["search", "--quiet", "--learning-rate", "0.1,0.2"]
        ),
    }
    results = rounds(n, cases)
    print(f"### The .npy cache and its stamps ({n} rounds)\n")
    print(table(results, list(cases)) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist", help="where the four MNIST .gz files are")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="2 rounds: a check that it all runs")
    args = p.parse_args()
    source = Path(args.data_dir)
    missing = [f.name for f in MNIST.files.values() if not (source / f.name).is_file()]
    if missing:
        print(f"plumbing: {source}: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    n = 2 if args.quick else args.rounds
    print(f"machine: {machine()}; {blas()}\n")
    with tempfile.TemporaryDirectory(prefix="plumbing-") as name:
        measure(n, folders(source, Path(name)))
    return 0


if __name__ == "__mp_main__" and VARIANT in os.environ:  # a search's worker: the same patches
    patch(os.environ[VARIANT])
elif __name__ == "__main__":
    sys.exit(child() if VARIANT in os.environ else main())
