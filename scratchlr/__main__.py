"""``python -m scratchlr`` and the ``scratchlr`` console script: see :mod:`scratchlr.cli`."""

import os
import sys

# One BLAS thread unless the user says otherwise: for the 128 x 784 x 10 products of a
# step, one OpenBLAS thread measured faster than two (docs/benchmarks.md). Must be set
# before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
