"""``scratchlr search``: tune the training flags on the validation split.

Every training flag is taken: one value is fixed, a comma list is a grid axis, a range
LOW:HIGH[:log] is sampled by ``--trials`` (:mod:`scratchlr.search.space`). Every trial is
checked as training would check it before any runs; a bad one is one line and exit 2, and
nothing is written. Trials run here, in ``--jobs`` worker processes or on the Dask cluster
at ``--scheduler``, each scored on validation only; ``--results`` is rewritten after each.
A first Ctrl-C lets the running trials finish, keeps the file and exits 130; ``--resume``
then runs the rest. At the end: the five best trials, the command that reproduces the best,
and with ``--test-best`` its one score on the test split.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shlex
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from ..config import to_text
from ..dataset import download, splits
from ..dataset.records import DATASETS, TRAIN_FILES
from ..files import modelfile
from ..progress import ProgressBar
from ..search import results, space, trials
from .args import (
    PROG,
    add_data_args,
    config_fields,
    download_bars,
    fail,
    option_strings,
    usage_error,
    writable_file,
)
from .training import Interrupt

TOP = 5


class Given(argparse.Action):
    """Keep each training flag's text, in the order the flags were given (the grid's order)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        text: Any,
        option: str | None = None,
    ) -> None:
        given = namespace.given = list(getattr(namespace, "given", None) or [])
        if any(name == self.dest for name, _ in given):
            parser.error(f"{option} given twice (give its values as one comma list)")
        given.append((self.dest, text))


def address(text: str) -> str:
    """An argparse type: a Dask scheduler's TCP address, ``[tcp://]HOST:PORT``."""
    found = re.fullmatch(
        r"(tcp://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(\d+)", text
    )  # HOST: a name, or [IPv6]
    if not found or not 0 < int(found.group(3)) < 65536:
        raise argparse.ArgumentTypeError(f"not a scheduler's address (tcp://HOST:PORT): {text!r}")
    return text


def add_parser(commands: Any) -> None:
    """The ``search`` command: every training flag, as a value, a list or a range, then the
    search's own flags."""
    p = commands.add_parser(
        "search",
        help="tune the training flags on the validation split",
        description="Train one run per trial and score each on the validation split (the test "
        "split is not read). Each training flag takes one VALUE (fixed), a comma list V1,V2,... "
        "(a grid axis; the grid is the product of the axes, in the order given), or with --trials "
        "a range LOW:HIGH or LOW:HIGH:log (sampled; integers stay integers). A flag with no value "
        "(--shuffle) is true; 'none' unsets an optional one.",
    )
    for f, where in config_fields(p):
        bare = (
            "true"
            if f.default is False
            else str(f.metadata["const"])
            if "const" in f.metadata
            else None
        )
        kinds = f"; one of {', '.join(f.metadata['choices'])}" if "choices" in f.metadata else ""
        alone = f"; given bare: {bare}" if bare else ""
        if "nargs" in f.metadata:  # --betas: a value is its numbers in one argument
            alone = f"; a value is its {f.metadata['nargs']} numbers, quoted: '0.9 0.99'"
        where.add_argument(
            *option_strings(f),
            dest=f.name,
            action=Given,
            metavar="VALUES",
            nargs="?" if bare else None,
            const=bare,
            help=f"{f.metadata['help']} (default: {to_text(f.default) or 'unset'}{kinds}{alone})",
        )
    s = p.add_argument_group("the search")
    s.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="sample N trials of the ranges and lists, not the grid",
    )
    s.add_argument("--search-seed", type=int, metavar="S", help="seed of --trials' sampling (0)")
    s.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="trials at once, in N worker processes (1: here)",
    )
    s.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        type=address,
        help="run the trials on the Dask cluster there (tcp://HOST:PORT; needs the [dist] "
        "extra); each worker reads MNIST from its own data folder",
    )
    s.add_argument(
        "--results",
        metavar="FILE.csv",
        type=writable_file,
        help="one row per finished trial, rewritten after each",
    )
    s.add_argument(
        "--resume", action="store_true", help="keep the trials already in --results; run the rest"
    )
    s.add_argument(
        "--test-best",
        action="store_true",
        help="retrain the best trial, score it once on the test split",
    )
    s.add_argument(
        "--save", metavar="MODEL.npz", type=writable_file, help="with --test-best, keep that model"
    )
    add_data_args(p, dataset="config")
    p.set_defaults(run=run, given=[])


def plan(args: argparse.Namespace) -> tuple[list[space.Settings], list[str], dict[str, str]]:
    """The trials, the names of the settings that vary and the flags all share
    (:func:`scratchlr.search.results.shared`), every trial checked as training checks it;
    ``ValueError`` naming the flag (and the trial) if one is refused."""
    axes = [space.parse_axis(name, text) for name, text in args.given]
    varying = [a.name for a in axes if a.varies]
    if not varying:
        raise ValueError(
            "nothing to search: give a flag a comma list of values, or a range with --trials N"
        )
    if any(a.name == "validate" and a.values != (True,) for a in axes):
        raise ValueError(
            "--validate is always on in a search: every trial is scored on the validation split"
        )
    if args.trials is not None and args.trials < 1:
        raise ValueError(f"--trials must be positive, got {args.trials}")
    if args.search_seed is not None and args.trials is None:
        raise ValueError("--search-seed is the sampling's: it needs --trials")
    todo = (
        space.samples(axes, args.trials, args.search_seed or 0) if args.trials else space.grid(axes)
    )
    for i, settings in enumerate(todo, start=1):
        try:
            space.config(settings)
        except ValueError as exc:
            raise ValueError(f"trial {i} ({space.describe(settings, varying)}): {exc}") from None
    return todo, varying, results.shared(todo[0], varying)


def check(args: argparse.Namespace, varying: list[str]) -> str | None:
    """What is wrong with the search's own flags (given the settings that vary), or None."""
    if args.data_dir and "dataset" in varying:
        return (
            "--data-dir names one folder, and the trials vary --dataset: leave it out, so that "
            "each data set is read from its own"
        )
    if args.jobs < 1:
        return f"--jobs must be positive, got {args.jobs}"
    if args.scheduler and args.jobs != 1:
        return (
            "--jobs and --scheduler are alternatives: a cluster runs as many trials as it has "
            "worker threads"
        )
    if args.resume and not args.results:
        return "--resume continues a --results file: give it"
    if args.save and not args.test_best:
        return "--save keeps the model of --test-best: give it"
    return None


def resumed(
    path: Path,
    rows: list[tuple[space.Settings, results.Outcome]],
    todo: list[space.Settings],
    varying: list[str],
) -> dict[int, results.Outcome]:
    """The trials of ``todo`` among the rows of the results file ``path``, by index;
    ``ValueError`` if it has a row that is not a trial of this search (or is there twice)."""
    done: dict[int, results.Outcome] = {}
    for settings, outcome in rows:
        i = next(
            (
                i
                for i, t in enumerate(todo)
                if i not in done and all(t[n] == settings[n] for n in varying)
            ),
            None,
        )
        if i is None:
            raise ValueError(
                f"{path}: its trial {space.describe(settings, varying)} is not one of this "
                "search's (--resume needs the flags that wrote it)"
            )
        done[i] = outcome
    return done


@contextlib.contextmanager
def executor(args: argparse.Namespace, stop: Callable[[], bool]) -> Iterator[tuple[Executor, int]]:
    """Where the trials run, and how many at once (``stop()``: whether Ctrl-C was pressed)."""
    if args.scheduler:
        with trials.cluster(args.scheduler, stop) as (on_cluster, width):
            yield on_cluster, width
    elif args.jobs > 1:
        with trials.pool(args.jobs) as workers:
            yield workers, args.jobs
    else:
        yield trials.InProcess(), 1


def table(best: list[tuple[space.Settings, results.Outcome]], varying: list[str]) -> list[str]:
    """The best trials as aligned text lines, a header first."""
    names = ["rank", *results.header(varying)]
    cells = [
        [
            str(k),
            *(to_text(s[n]) for n in varying),
            f"{o.val_loss:.6f}",
            f"{o.val_accuracy:.4f}",
            str(o.steps),
            f"{o.seconds:.2f}",
        ]
        for k, (s, o) in enumerate(best, start=1)
    ]
    widths = [max(len(row[j]) for row in [names, *cells]) for j in range(len(names))]
    return ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [names, *cells]]


def prepare(
    args: argparse.Namespace, todo: list[space.Settings], varying: list[str], common: dict[str, str]
) -> dict[int, results.Outcome]:
    """The trials a resumed results file already has (none without ``--resume``), the
    training files fetched and verified where the trials run on this machine. Raises
    ``ValueError`` (a file of another search), ``DownloadError`` or ``DataError``."""
    done: dict[int, results.Outcome] = {}
    if args.resume and args.results.exists():
        rows = results.read(args.results, varying)  # its columns first: the same settings vary
        results.check_shared(args.results, common)
        done = resumed(args.results, rows, todo, varying)
    elif args.results and args.results.exists() and not args.quiet:
        print(
            f"{PROG} search: replacing {args.results} (--resume would continue it)", file=sys.stderr
        )
    if not args.scheduler:  # here, or workers on this machine: fetch and verify them first
        for dataset in trials.datasets(todo):
            download.fetch_missing(
                dataset, args.data_dir, args.mirror, download_bars(args), TRAIN_FILES
            )
            trials.data(dataset, args.data_dir, 0)
    return done


def run(args: argparse.Namespace) -> int:
    """Search as the flags say: plan and check every trial, run them, report the best."""
    try:
        todo, varying, common = plan(args)
    except ValueError as exc:
        return usage_error(str(exc))
    problem = check(args, varying)
    if problem:
        return usage_error(problem)
    if args.scheduler and importlib.util.find_spec("distributed") is None:
        return fail(
            "--scheduler needs dask.distributed, the [dist] extra: pip install -e '.[dist]' in a "
            "checkout, or pip install distributed"
        )
    try:
        done = prepare(args, todo, varying, common)
    except (ValueError, download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.filename or args.results}: {exc.strerror or exc}")
    try:
        # Ctrl-C's handler before the cue: a Ctrl-C as soon as the cue shows stops the search
        # cleanly. The workers start before the bar, whose thread could take a Ctrl-C meant
        # for the search while they start.
        with Interrupt() as interrupted:
            announce(args, len(todo), len(done))
            with (
                executor(args, interrupted) as (runner, width),
                progress(args, len(todo), len(done)) as bar,
            ):

                def finished(i: int, outcome: results.Outcome) -> None:
                    done[i] = outcome
                    if args.results:
                        kept = [(todo[j], done[j]) for j in sorted(done)]
                        results.write(args.results, kept, varying, common)
                    if bar is not None:
                        best = max(o.val_accuracy for o in done.values())
                        bar.update(1)
                        bar.note(f"best val_accuracy {best:.4f}")  # and redraw it now

                trials.run_all(
                    runner,
                    width,
                    todo,
                    [i for i in range(len(todo)) if i not in done],
                    args.data_dir,
                    finished,
                    interrupted,
                )
                stopped = interrupted()  # a Ctrl-C from here on waits for --test-best's one run
                if bar is not None:
                    bar.close()
                best = show(args, [(todo[i], done[i]) for i in sorted(done)], varying)
                if args.test_best and best and not stopped:
                    test_best(args, runner, best)
    except trials.TrialError as exc:
        return fail(f"trial {exc.index + 1} ({space.describe(todo[exc.index], varying)}): {exc}")
    except (trials.RunnerError, download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    except BrokenProcessPool as exc:
        return fail(f"a worker process died: {exc}")
    except OSError as exc:
        return fail(
            f"cannot write {exc.filename or args.results or args.save}: {exc.strerror or exc}"
        )
    if stopped:
        rest = "; --resume runs the rest" if args.results and len(done) < len(todo) else ""
        print(f"{PROG}: interrupted after {len(done)} of {len(todo)} trials{rest}", file=sys.stderr)
        return 130
    return 0


def announce(args: argparse.Namespace, total: int, done: int) -> None:
    """The cue on stderr (not with ``--quiet``): how many trials, and where they run."""
    if args.quiet:
        return
    where = args.scheduler or (f"{args.jobs} worker processes" if args.jobs > 1 else "this process")
    print(f"{PROG} search: {total} trials ({done} done), on {where}", file=sys.stderr)


@contextlib.contextmanager
def progress(args: argparse.Namespace, total: int, done: int) -> Iterator[ProgressBar | None]:
    """A bar of trials on stderr, drawn at once on a terminal; None with ``--quiet``."""
    if args.quiet:
        yield None
        return
    bar = ProgressBar(total, "search", unit="trial", initial=done)
    try:
        yield bar
    finally:
        bar.close()


def show(
    args: argparse.Namespace, rows: list[tuple[space.Settings, results.Outcome]], varying: list[str]
) -> tuple[space.Settings, results.Outcome] | None:
    """Print the best trials and the command that trains the best; return the best (None
    if no trial finished)."""
    if not rows:
        return None
    best = results.best(rows, TOP)
    print(
        f"The {len(best)} best of {len(rows)} trials, by validation accuracy "
        f"({'on ' + str(args.results) if args.results else 'not kept: give --results'}):"
    )
    print("\n".join(table(best, varying)))
    data = [] if not args.data_dir else ["--data-dir", args.data_dir]
    env = [
        f"{name}=1" for name in trials.ONE_BLAS_THREAD if os.environ.get(name, "1") != "1"
    ]  # as the trials ran
    print(
        f"Best: {' '.join(env + [''])}python -m {PROG} "
        f"{shlex.join([*space.arguments(best[0][0]), '--device', 'cpu', *data])}",
        flush=True,
    )
    return best[0]


def test_best(
    args: argparse.Namespace, runner: Executor, best: tuple[space.Settings, results.Outcome]
) -> None:
    """Retrain the best trial where the trials ran, score it once on the test split, and keep
    the model if asked. The run is the trial's, bit for bit, so its validation accuracy is the
    trial's. ``OSError`` if the model cannot be written."""
    settings, outcome = best
    if not args.scheduler:  # the test files, fetched and read now and only now
        dataset = DATASETS[space.config(settings).dataset]
        download.fetch_missing(dataset, args.data_dir, args.mirror, download_bars(args))
    tested = runner.submit(trials.run_tested, settings, args.data_dir).result()
    print(
        f"Test accuracy of the best (the test split, read once): {tested.test_accuracy:.4f}",
        flush=True,
    )
    if args.save:
        modelfile.save(
            args.save,
            modelfile.ModelFile(
                tested.W,
                tested.b,
                space.config(settings),
                outcome.val_accuracy,
                tested.test_accuracy,
            ),
        )
