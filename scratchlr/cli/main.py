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
from . import models, tools, training
from .args import PROG, Parser, fail

TOP_FLAGS = ("-h", "--help", "--version")


def parser() -> tuple[Parser, list[str]]:
    """The top-level parser (``--version``, and one subcommand per command), and the commands' names."""
    p = Parser(prog=PROG, description="Softmax regression on MNIST, by hand. With no command, or with flags "
               "first, it trains: 'scratchlr [FLAGS]' is 'scratchlr train [FLAGS]'. "
               "Each command's flags: scratchlr COMMAND --help.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = p.add_subparsers(title="commands", metavar="COMMAND", required=True)
    training.add_parser(commands)
    models.add_parsers(commands)
    tools.add_parsers(commands)
    return p, list(commands.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m scratchlr`` and the ``scratchlr`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p, names = parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in TOP_FLAGS):
        argv.insert(0, "train")
    elif argv[0] not in names and argv[0] not in TOP_FLAGS:
        close = difflib.get_close_matches(argv[0], names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (the commands: {', '.join(names)})"
        return fail(f"unknown command '{argv[0]}'{hint}", 2)
    args = p.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (``... | head``): nothing more to say
        return 1
