"""``python -m scratchlr [COMMAND] [FLAGS]``: argparse subcommands, and training by default.

A bare ``scratchlr``, or one whose first word is a flag, trains (``scratchlr --epochs 3`` is
``scratchlr train --epochs 3``), as the seed's script did. Usage errors exit 2, data and
runtime errors exit 1; each is one line on stderr.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence

from .. import __version__
from . import curvature, exercise, models, search, serve, tools, training
from .args import PROG, Parser, fail, usage_error

TOP_FLAGS = ("-h", "--help", "--version")


def parser() -> tuple[Parser, dict[str, Parser]]:
    """The top-level parser (``--version``, and one subcommand per command), and each
    command's parser."""
    p = Parser(
        prog=PROG,
        description="Softmax regression on MNIST, by hand. With no command, or with flags "
        "first, it trains: 'scratchlr [FLAGS]' is 'scratchlr train [FLAGS]'. "
        "Each command's flags: scratchlr COMMAND --help.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = p.add_subparsers(title="commands", metavar="COMMAND", required=True)
    training.add_parser(commands)
    search.add_parser(commands)
    models.add_parsers(commands)
    serve.add_parser(commands)
    tools.add_parsers(commands)
    curvature.add_parser(commands)
    exercise.add_parser(commands)
    return p, commands.choices


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m scratchlr`` and the ``scratchlr`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p, commands = parser()
    if argv and argv[0] in TOP_FLAGS:
        p.parse_args(argv)  # prints the help or the version, and exits
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "train")
    if argv[0] not in commands:
        close = difflib.get_close_matches(argv[0], commands, n=1)
        hint = (
            f"; did you mean '{close[0]}'?" if close else f" (the commands: {', '.join(commands)})"
        )
        return usage_error(f"unknown command '{argv[0]}'{hint}")
    args = commands[argv[0]].parse_args(argv[1:])  # so a usage error names the command
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (``... | head``): nothing more to say
        return 1
