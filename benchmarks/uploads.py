"""What an upload to the demo page costs to read and answer: ``images.from_bytes`` (with the
server's pixel cap) and :func:`scratchlr.serve.api.explanation`, in this process.

    python benchmarks/uploads.py [--repeats 15]

The pictures are made here: the pad's PNG (280x280 RGBA, a white stroke on black, as the
page sends it), a photo of a digit (grey paper with noise and a dark stroke) as a 1000x1000
JPEG and PNG, a 1000x1000 PNG of pure noise (the largest body under the server's 1 MiB cap),
and the photo at 2000x2000, which the old caps (4 million pixels, 4 MiB) let in. Prints a
Markdown table of each one's size, whether the server takes its body now, and the median and
minimum milliseconds over ``--repeats`` (after one to warm up).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402
from PIL import Image  # noqa: E402

from scratchlr.files import images  # noqa: E402
from scratchlr.serve import api, protocol  # noqa: E402

OLD_PIXELS = 4_000_000  # the server's pixel cap before issue 29


def encoded(picture: Image.Image, kind: str, **options: int) -> bytes:
    """The bytes of ``picture`` saved as ``kind``."""
    out = io.BytesIO()
    picture.save(out, kind, **options)
    return out.getvalue()


def photo(side: int) -> Image.Image:
    """A photo of a digit, ``side`` pixels square: grey paper with noise, a dark stroke, RGB."""
    rng = np.random.default_rng(0)
    x = np.clip(200 + rng.normal(0, 12, (side, side, 3)), 0, 255)
    width = side // 10
    x[side // 5 : 4 * side // 5, side // 2 - width // 2 : side // 2 + width // 2] = 30
    return Image.fromarray(x.astype(np.uint8), "RGB")


def pad() -> Image.Image:
    """The pad's picture: 280x280 RGBA, black with a white stroke."""
    x = np.zeros((280, 280, 4), np.uint8)
    x[..., 3] = 255
    x[60:220, 125:155] = 255
    return Image.fromarray(x, "RGBA")


def noise(side: int) -> Image.Image:
    """Grey noise, ``side`` pixels square: what PNG compresses least."""
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (side, side), np.uint8))


def uploads() -> dict[str, tuple[bytes, int]]:
    """Each upload's name -> (its bytes, the pixel cap it is read with)."""
    return {
        "the pad, 280x280 PNG": (encoded(pad(), "PNG"), protocol.MAX_PIXELS),
        "a photo, 1000x1000 JPEG": (encoded(photo(1000), "JPEG", quality=90), protocol.MAX_PIXELS),
        "a photo, 1000x1000 PNG": (encoded(photo(1000).convert("L"), "PNG"), protocol.MAX_PIXELS),
        "noise, 1000x1000 PNG": (encoded(noise(1000), "PNG"), protocol.MAX_PIXELS),
        "a photo, 2000x2000 JPEG (old caps)": (
            encoded(photo(2000), "JPEG", quality=90),
            OLD_PIXELS,
        ),
        "a photo, 2000x2000 PNG (old caps)": (
            encoded(photo(2000).convert("L"), "PNG"),
            OLD_PIXELS,
        ),
    }


def seconds(data: bytes, cap: int, W: np.ndarray, b: np.ndarray, repeats: int) -> list[float]:
    """The seconds of reading and answering ``data``, ``repeats`` times after one."""
    api.explanation(W, b, images.from_bytes(data, cap))
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        api.explanation(W, b, images.from_bytes(data, cap))
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed runs of each upload (15)")
    args = p.parse_args()
    W = np.random.default_rng(0).normal(0, 0.05, (784, 10)).astype(np.float32)
    b = np.zeros(10, np.float32)
    print(f"machine: {machine()}\n")
    print("| upload | bytes | taken | median ms | min ms |\n|---|---:|---|---:|---:|")
    for name, (data, cap) in uploads().items():
        times = seconds(data, cap, W, b, args.repeats)
        taken = "yes" if len(data) <= protocol.MAX_BODY else "413"
        median = 1e3 * statistics.median(times)
        print(f"| {name} | {len(data):,} | {taken} | {median:.1f} | {1e3 * min(times):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
