"""Why one prediction, pixel by pixel: logit_c = sum_i x_i W_ic + b_c.

The map x * W[:, c] gives each pixel's share of class c's logit; the picture
(:func:`scratchlr.reports.plots.explain`) and the demo page (:mod:`scratchlr.serve.api`)
both show it for the two classes of highest logit, on one colour scale centred at 0.
Plain NumPy: the demo server uses it without matplotlib.
"""

from __future__ import annotations

import numpy as np


def top_two(W: np.ndarray, x: np.ndarray, z: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The classes of the two highest logits z (C,), highest first (a tie: the lower class
    first), each with its map x * W[:, c] (D,): each pixel's share of logit c, which sums
    (plus b_c) to it. W (D, C), x (D,)."""
    classes = np.argsort(-z, kind="stable")[:2]
    return [(int(c), x * W[:, c]) for c in classes]


def largest(*arrays: np.ndarray) -> float:
    """The largest |value| across ``arrays`` (1 if all are 0): a colour scale centred at 0 runs
    from minus it to it."""
    return max(float(np.abs(a).max()) for a in arrays) or 1.0
