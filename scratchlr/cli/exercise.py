"""The ``exercise`` command: ``init DIR`` writes the learner's file, ``check FILE`` checks it.

``check`` prints one line per function and exits 0 only when all of them, and the gradient
check, pass; a file that cannot be imported is one line and exit 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..dataset import splits
from ..dataset.records import DATASETS, TRAIN_FILES
from ..exercise import checks, skeleton
from .args import Parser, add_data_args, fail


def add_parser(commands: Any) -> None:
    """The ``exercise`` command, with its ``init`` and ``check``."""
    p = commands.add_parser(
        "exercise",
        help="write the model's functions yourself, and check them",
        description="Write the model's functions yourself: 'init DIR' writes DIR/my_model.py "
        "(each function's signature, equation and shapes, its body to write) and a README; "
        "'check FILE' compares each function with scratchlr's, with hints.",
    )
    steps = p.add_subparsers(title="steps", metavar="STEP", required=True, parser_class=Parser)
    q = steps.add_parser(
        "init",
        help="write my_model.py and a README into DIR",
        description="Write DIR/my_model.py and DIR/README.md (DIR is made if missing; files "
        "already there are kept, and nothing is written).",
    )
    q.add_argument("directory", metavar="DIR", type=Path)
    q.set_defaults(run=run_init)
    q = steps.add_parser(
        "check",
        help="check a my_model.py against scratchlr's functions",
        description="Import FILE and check each function against scratchlr's on random inputs, "
        "extreme logits and the data set's first images (where its folder has them: without "
        "them, that stage is skipped), then the gradient against finite differences. Exits 0 "
        "only when everything passes.",
    )
    q.add_argument("file", metavar="FILE", type=Path)
    add_data_args(q, fetches=False)
    q.set_defaults(run=run_check)


def run_init(args: argparse.Namespace) -> int:
    """``scratchlr exercise init DIR``."""
    try:
        written = skeleton.init(args.directory)
    except OSError as exc:
        return fail(
            str(exc)
            if isinstance(exc, FileExistsError)
            else f"{args.directory}: {exc.strerror or exc}"
        )
    print(
        f"wrote {', '.join(map(str, written))}; write the functions, then: "
        f"python -m scratchlr exercise check {written[0]}"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``scratchlr exercise check FILE``: a line per function; 0 if all pass."""
    try:
        module = checks.load(args.file)
    except checks.LearnerError as exc:
        return fail(str(exc))
    dataset = DATASETS[args.dataset]
    directory = splits.data_dir(dataset, args.data_dir)
    try:
        arrays: dict[str, Any] = splits.load_arrays(dataset, directory, TRAIN_FILES)
    except splits.DataError:
        arrays = {}
        title = dataset.title
        print(f"({title} not found in {directory}: the {title} stage is skipped)")
    verdicts = checks.check(module, arrays.get("train_images"), arrays.get("train_labels"))
    for v in verdicts:
        print(v.line(), flush=True)
    counts = {s: sum(v.status == s for v in verdicts) for s in ("pass", "fail", "todo")}
    print(
        f"{counts['pass']} of {len(verdicts)} pass, {counts['fail']} fail, "
        f"{counts['todo']} not written yet"
    )
    return 0 if counts["pass"] == len(verdicts) else 1
