"""Images of one's own, made to look like MNIST: reading files, and MNIST's preprocessing.

Every image comes out as x (784,) float pixels in [0, 1], a light digit on black, as
``model.pixels`` gives for MNIST. Readers:
- PNG, JPEG and other formats Pillow opens (Pillow comes with the ``[plot]`` extra);
- ``.npy``: (28, 28) or (784,), uint8 or float in [0, 1] (read without pickle);
- IDX image files (a name holding ``idx3``), gzipped or not: each image of the file.

A 28x28 image is taken to be in MNIST's format already: only inverted if its background is
light. A larger image, a photo or a drawing, goes through :func:`mnist_like`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import idx

SIDE, BOX = 28, 20


class ImageError(RuntimeError):
    """An image file cannot be read or is not one digit's image. One-line message."""


def light_background(x: np.ndarray) -> bool:
    """Whether the border pixels are mostly light (median above 0.5): a dark digit on paper."""
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    return bool(np.median(border) > 0.5)


def center_of_mass(x: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean position.  x (H, W) -> two floats."""
    rows, cols = np.indices(x.shape)
    return float((rows * x).sum() / x.sum()), float((cols * x).sum() / x.sum())


def mnist_like(x: np.ndarray) -> np.ndarray:
    """MNIST's own preprocessing, for a grayscale image x (H, W) in [0, 1] -> (28, 28).

    As NIST's digits were made into MNIST: the ink made light on black (inverted when the
    background is light), cropped to its bounding box, scaled so its longer side is 20
    pixels keeping its aspect ratio, then placed in 28x28 with its centre of mass at the
    centre. Where this differs: the original scaled bilevel scans with its own anti-aliasing,
    this resamples grey pixels with Pillow's Lanczos filter; and it shifts by whole pixels.
    Faint pixels (below 10 % of the brightest) are not counted in the bounding box.
    """
    from PIL import Image

    if light_background(x):
        x = 1.0 - x
    ink = np.argwhere(x > 0.1 * x.max()) if x.max() > 0 else np.empty((0, 2), int)
    if not len(ink):
        raise ImageError("no digit: the image is blank")
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
    crop = x[top:bottom, left:right]
    scale = BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(size, Image.LANCZOS))
    small = np.clip(small, 0.0, 1.0)
    out = np.zeros((SIDE, SIDE), np.float32)
    r, c = center_of_mass(small)
    top, left = round(SIDE / 2 - r), round(SIDE / 2 - c)  # the centre of mass lands at (14, 14)
    top, left = min(max(top, 0), SIDE - small.shape[0]), min(max(left, 0), SIDE - small.shape[1])
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def as_digit(x: np.ndarray) -> np.ndarray:
    """A grayscale image in [0, 1] -> x (784,): MNIST-sized ones as they are (made light on
    black), others through :func:`mnist_like`."""
    if x.shape == (SIDE, SIDE):
        return (1.0 - x if light_background(x) else x).reshape(-1).astype(np.float32)
    return mnist_like(x).reshape(-1)


def read(path: Path) -> list[np.ndarray]:
    """The images in ``path``, each x (784,) float32 in [0, 1]; :class:`ImageError` if none."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".npy"):
        return [read_npy(path)]
    if "idx3" in name:
        try:
            images = idx.read_idx(path)
        except idx.IDXFormatError as exc:
            raise ImageError(f"{path}: not an IDX image file ({exc})") from None
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or images.dtype != np.uint8:
            raise ImageError(f"{path}: IDX images must be N x 28 x 28 uint8, got {images.shape} {images.dtype}")
        return [(im.reshape(-1) / np.float32(255)).astype(np.float32) for im in images]
    return [read_picture(path)]


def read_npy(path: Path) -> np.ndarray:
    """A .npy image: (28, 28) or (784,), uint8 (0..255) or float in [0, 1]."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: not a .npy array ({exc})") from None
    if a.shape not in ((SIDE, SIDE), (SIDE * SIDE,)):
        raise ImageError(f"{path}: a .npy image must be 28x28 or 784 pixels, got shape {a.shape}")
    if a.dtype == np.uint8:
        return as_digit(a.reshape(SIDE, SIDE) / np.float32(255))
    if a.dtype.kind != "f" or not (np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1):
        raise ImageError(f"{path}: a .npy image must be uint8, or floats in [0, 1]; got {a.dtype}")
    return as_digit(a.reshape(SIDE, SIDE).astype(np.float32))


def read_picture(path: Path) -> np.ndarray:
    """A PNG, JPEG, ... read with Pillow, as grayscale."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImageError(f"{path}: reading pictures needs Pillow: pip install 'scratchlr[plot]'") from None
    try:
        with Image.open(path) as im:
            x = np.asarray(im.convert("L"), np.float32) / np.float32(255)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ImageError(f"{path}: not an image Pillow can read ({exc})") from None
    return as_digit(x)
