"""``python -m scratchlr``: see :mod:`scratchlr.cli`."""

import sys

from .cli import main

sys.exit(main())
