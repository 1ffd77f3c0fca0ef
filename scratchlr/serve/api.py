"""What the demo page's JSON API answers: the numbers of one prediction, the templates, and a
run's weights in its frames.

Every number comes from the engine: an image's pixels from
:func:`scratchlr.files.images.from_bytes` (``scratchlr predict``'s reader of pictures), its
logits and probabilities from :func:`scratchlr.reports.evaluate.scores` (``predict``'s
forward pass). The page's script only draws them. Grids are 28 lists of 28 floats, row by
row, as the image is shown.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .. import model
from ..dataset.splits import Split
from ..files.images import SIDE
from ..reports.contributions import largest, top_two
from ..reports.evaluate import scores

# matplotlib's RdBu_r, the diverging map of plots.templates and plots.explain: ColorBrewer's
# eleven RdBu colours, blue (most negative) to red (most positive), linearly interpolated.
PALETTE = (
    "#053061",
    "#2166ac",
    "#4393c3",
    "#92c5de",
    "#d1e5f0",
    "#f7f7f7",
    "#fddbc7",
    "#f4a582",
    "#d6604d",
    "#b2182b",
    "#67001f",
)


def grid(x: np.ndarray) -> list[list[float]]:
    """An image's 784 values (D,) as 28 rows of 28 floats."""
    return np.asarray(x, np.float64).reshape(SIDE, SIDE).tolist()


def explanation(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    """Everything the page shows of image x (D,) in [0, 1]: ``prediction``, the ten
    ``probabilities`` and ``logits``, the ``input`` grid, and for the two classes of highest
    logit c their ``contributions``: the map x * W[:, c], its sum, the bias b_c and the
    logit z_c = sum + b_c, with one colour ``scale`` for both maps (as ``plots.explain``)."""
    z, p = scores(W, b, x)
    top = top_two(W, x, z)
    return {
        "prediction": top[0][0],
        "probabilities": [float(v) for v in p],
        "logits": [float(v) for v in z],
        "input": grid(x),
        "contributions": [
            {
                "class": int(c),
                "map": grid(part),
                "pixels": float(part.sum()),
                "bias": float(b[c]),
                "logit": float(z[c]),
            }
            for c, part in top
        ],
        "scale": largest(*(part for _, part in top)),
    }


def templates(W: np.ndarray, b: np.ndarray, test_images: int) -> dict[str, Any]:
    """The ten templates W[:, c] as grids, on one colour ``scale``; the biases; the
    ``palette`` of the maps; and how many ``test_images`` :func:`test_image` can show."""
    return {
        "templates": [grid(W[:, c]) for c in range(W.shape[1])],
        "scale": largest(W),
        "bias": [float(v) for v in b],
        "palette": list(PALETTE),
        "test_images": test_images,
    }


def packed_weights(W: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """A run's weights as its frames send them: W (D, C) as ``W``, base64 of its float32
    bytes in C order (little-endian, as a browser's ``Float32Array`` reads them), b (C,) as
    floats, and the templates' colour ``scale``, max |W|."""
    W32 = np.ascontiguousarray(W, "<f4")
    return {
        "W": base64.b64encode(W32.tobytes()).decode(),
        "b": [float(v) for v in b],
        "scale": largest(W32),
    }


def test_image(W: np.ndarray, b: np.ndarray, split: Split, i: int) -> dict[str, Any]:
    """Test image i, its ``index`` and ``label``, and its :func:`explanation`; ``IndexError``
    if there is no image i."""
    if not 0 <= i < len(split.labels):
        raise IndexError(f"no test image {i}: there are {len(split.labels)}, from 0")
    return {
        "index": i,
        "label": int(split.labels[i]),
        **explanation(W, b, model.pixels(np.asarray(split.images[i]), W.dtype)),
    }
