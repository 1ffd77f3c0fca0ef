"""Images of one's own, made to look like MNIST: reading files, and MNIST's preprocessing.

Every image comes out as x (784,) float32 pixels in [0, 1], a light digit on black. An
image of bytes (IDX, uint8 ``.npy``, an 8-bit picture) is scaled by :func:`scratchlr.model.pixels`,
so its pixels are exactly the ones training saw. Readers:
- PNG, JPEG and other formats Pillow opens (Pillow comes with the ``[plot]`` extra);
- ``.npy``: (28, 28) or (784,), uint8 or float in [0, 1] (read without pickle);
- IDX image files, gzipped or not (known by their magic bytes): each image of the file.

A 28x28 image is taken to be in MNIST's format already: only inverted if its background is
light. A larger image, a photo or a drawing, goes through :func:`mnist_like`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import model
from ..dataset import idx

SIDE = 28  # the images a model reads are SIDE x SIDE, as MNIST's (and its kin's) are
BOX = 20  # MNIST's digits were scaled to fit 20 x 20, then centred in 28 x 28
UPLOAD_FORMATS = ("PNG", "JPEG")  # what :func:`from_bytes` opens
UPLOAD_PIXELS = 4_000_000  # :func:`from_bytes`'s default cap (2000 x 2000); serve asks for fewer


class ImageError(RuntimeError):
    """An image file cannot be read or is not one digit's image. One-line message."""


def border(x: np.ndarray) -> np.ndarray:
    """The pixels of the image's outer rows and columns."""
    return np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])


def light_background(x: np.ndarray) -> bool:
    """Whether the border pixels are mostly light (median above 0.5): a dark digit on paper."""
    return bool(np.median(border(x)) > 0.5)


def center_of_mass(x: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean position.  x (H, W) -> two floats."""
    rows, cols = np.indices(x.shape)
    return float((rows * x).sum() / x.sum()), float((cols * x).sum() / x.sum())


def mnist_like(x: np.ndarray) -> np.ndarray:
    """MNIST's own preprocessing, for a grayscale image x (H, W) in [0, 1] -> (28, 28).

    As NIST's digits were made into MNIST: the ink made light on black (inverted when the
    background is light), cropped to its bounding box, scaled so its longer side is 20
    pixels keeping its aspect ratio, then placed in 28x28 with its centre of mass at the
    centre. Where this differs:
    - the original scaled bilevel scans with its own anti-aliasing; this resamples grey
      pixels with Pillow's Lanczos filter, and shifts by whole pixels;
    - photos are not bilevel: the paper's level (the border's median) is subtracted and the
      rest stretched to [0, 1]; uneven lighting is not corrected;
    - faint pixels (below 10 % of the brightest) are not counted in the bounding box.
    """
    from PIL import Image

    if light_background(x):
        x = 1.0 - x
    paper = float(np.median(border(x)))
    if x.max() <= paper:
        raise ImageError("no digit: the image is blank")
    x = np.clip((x - paper) / (x.max() - paper), 0.0, 1.0)
    ink = np.argwhere(x > 0.1)
    top, left = ink.min(axis=0)  # the bounding box of the ink
    bottom, right = ink.max(axis=0) + 1
    crop = x[top:bottom, left:right]
    scale = BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(
        Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    )
    small = np.clip(small, 0.0, 1.0)
    out = np.zeros((SIDE, SIDE), np.float32)
    r, c = center_of_mass(small)
    top = round(SIDE / 2 - r)  # the centre of mass lands at (14, 14)
    left = round(SIDE / 2 - c)
    top = min(max(top, 0), SIDE - small.shape[0])  # and the digit stays inside
    left = min(max(left, 0), SIDE - small.shape[1])
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def as_digit(x: np.ndarray) -> np.ndarray:
    """A grayscale image, uint8 or floats in [0, 1] -> x (784,) float32, light on black: a
    28x28 one as it is (inverted if its background is light), a larger one through
    :func:`mnist_like`. A blank image is refused."""
    u8 = x.dtype == np.uint8
    if x.shape != (SIDE, SIDE):
        return mnist_like(model.pixels(x) if u8 else x).reshape(-1)
    if light_background(model.pixels(x) if u8 else x):
        # bytes are inverted as bytes, so that their pixels stay model.pixels's
        x = 255 - x if u8 else 1.0 - x
    x = model.pixels(x) if u8 else x.astype(np.float32)
    if x.max() == 0:
        raise ImageError("no digit: the image is blank")
    return x.reshape(-1)


def read(path: Path) -> list[np.ndarray]:
    """The images in ``path``, each x (784,) float32 in [0, 1]; :class:`ImageError` if none."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    kind = idx.declared_ndim(path)
    if kind is not None:
        return read_idx_images(path, kind)
    try:
        return [
            as_digit(read_npy(path) if path.name.lower().endswith(".npy") else read_picture(path))
        ]
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None


def from_bytes(data: bytes, max_pixels: int = UPLOAD_PIXELS) -> np.ndarray:
    """The bytes of one PNG or JPEG file -> x (784,) float32 in [0, 1], read as :func:`read`
    reads a picture; :class:`ImageError` if they are empty, not such an image, damaged, of more
    than ``max_pixels`` pixels, or blank. For images sent over the network (``scratchlr
    serve``): the messages name the problem, not the decoder's internals (those are the error's
    ``__cause__``)."""
    if not data:
        raise ImageError("empty: no image bytes")
    return as_digit(read_picture(io.BytesIO(data), UPLOAD_FORMATS, max_pixels))


def read_idx_images(path: Path, kind: int) -> list[np.ndarray]:
    """Each image of an IDX file of N x 28 x 28 uint8 images."""
    if kind != 3:
        labels = " (labels)" if kind == 1 else ""
        raise ImageError(f"{path}: an IDX file of {kind} dimension(s){labels}, not images")
    try:
        images = idx.read_idx(path)
    except idx.IDXFormatError as exc:
        raise ImageError(f"{path}: not an IDX image file ({exc})") from None
    if images.shape[1:] != (SIDE, SIDE) or images.dtype != np.uint8:
        raise ImageError(
            f"{path}: IDX images must be N x 28 x 28 uint8, got {images.shape} {images.dtype}"
        )
    return list(model.pixels(images.reshape(len(images), -1)))


def read_npy(path: Path) -> np.ndarray:
    """A .npy image (28, 28) or (784,), uint8 (0..255) or float in [0, 1] -> (28, 28), uint8 as
    it is, floats as float32."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageError(f"not a .npy array ({exc})") from None
    if a.shape not in ((SIDE, SIDE), (SIDE * SIDE,)):
        raise ImageError(f"a .npy image must be 28x28 or 784 pixels, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.reshape(SIDE, SIDE)
    if a.dtype.kind != "f":
        raise ImageError(f"a .npy image must be uint8, or floats in [0, 1]; got {a.dtype}")
    if not (np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1):
        raise ImageError(
            f"a float .npy image must lie in [0, 1], got values from {a.min()} to {a.max()}"
        )
    return a.reshape(SIDE, SIDE).astype(np.float32)


def read_picture(
    source: Path | BinaryIO, formats: tuple[str, ...] | None = None, max_pixels: int | None = None
) -> np.ndarray:
    """A PNG, JPEG, ... (a path or an open binary file) read with Pillow, upright (EXIF
    orientation), as grayscale: 8-bit ones as uint8, 16-bit and float ones scaled by their
    range to float32 in [0, 1]. Transparent pixels count as white paper. ``formats`` limits
    the formats tried (Pillow's names), and ``max_pixels`` the size decoded. An
    :class:`ImageError`'s message names the problem in the user's words; Pillow's own exception
    is its ``__cause__``."""
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ImageError("reading pictures needs Pillow: pip install 'scratchlr[plot]'") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=formats) as file:
                if max_pixels is not None and file.width * file.height > max_pixels:
                    raise ImageError(
                        f"too large: {file.width}x{file.height} pixels, over {max_pixels:,}"
                    )
                im = ImageOps.exif_transpose(file)
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    x = np.asarray(im, np.float32)
                    return x / np.float32(
                        65535 if im.mode.startswith("I;16") else max(float(x.max()), 1.0)
                    )
                if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                    im = Image.alpha_composite(
                        Image.new("RGBA", im.size, "white"), im.convert("RGBA")
                    )
                return np.asarray(im.convert("L"), np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"too large to be a digit's picture: over {Image.MAX_IMAGE_PIXELS:,} pixels"
        ) from exc
    except UnidentifiedImageError as exc:
        kinds = f"a {' or '.join(formats)} image" if formats else "an image Pillow can read"
        raise ImageError(f"not {kinds}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError("damaged or truncated: the image's pixels cannot be decoded") from exc
