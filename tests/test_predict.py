"""Images of one's own: reading, MNIST's preprocessing, and ``scratchlr predict``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_idx

from scratchlr import model
from scratchlr.files import images, modelfile

Image = pytest.importorskip("PIL.Image", reason="Pillow (the [plot] extra) is not installed")
ROOT = Path(__file__).resolve().parents[1]


def predict(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "scratchlr", "predict", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def classes_on_arrays(saved: Path, images_u8: np.ndarray) -> list[int]:
    m = modelfile.load(saved)
    return model.predictions(model.logits(model.pixels(images_u8), m.W, m.b)).tolist()


def test_mnist_test_images_as_png_get_the_arrays_classes(
    mnist_data, saved: Path, tmp_path: Path
) -> None:
    files = []
    for i in range(120):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(mnist_data.test.images[i].reshape(28, 28)).save(files[-1])
    proc = predict(str(saved), *files, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [o["file"] for o in out] == files
    assert [o["prediction"] for o in out] == classes_on_arrays(saved, mnist_data.test.images[:120])
    for o in out:
        probs = [p for _, p in o["top3"]]
        assert (
            o["top3"][0][0] == o["prediction"]
            and probs == sorted(probs, reverse=True)
            and sum(probs) <= 1 + 1e-6
        )


def drawing(
    digit: np.ndarray, size: tuple[int, int], at: tuple[int, int], scale: int
) -> np.ndarray:
    """A test digit as a drawing: dark ink on white, ``scale`` times bigger, off centre."""
    ink = Image.fromarray(255 - digit.reshape(28, 28)).resize(
        (28 * scale, 28 * scale), Image.BICUBIC
    )
    canvas = Image.new("L", size, 255)
    canvas.paste(ink, at)
    return np.asarray(canvas, np.float32) / 255


def test_mnist_like_preprocessing(mnist_data) -> None:
    x = images.mnist_like(drawing(mnist_data.test.images[0], (150, 120), (40, 10), 3))
    assert x.shape == (28, 28) and 0 <= x.min() and x.max() <= 1
    assert x[0].max() < 0.05 and x[-1].max() < 0.05  # light on black, with a margin
    rows, cols = np.nonzero(x > 0.1 * x.max())
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # the box fits 20 pixels
    r, c = images.center_of_mass(x)
    assert abs(r - 14) <= 0.75 and abs(c - 14) <= 0.75  # centred by its centre of mass


def test_drawings_are_classified_like_the_digits(mnist_data, saved: Path, tmp_path: Path) -> None:
    files = []
    for i in range(40):
        files.append(tmp_path / f"{i}.jpg")
        x = drawing(mnist_data.test.images[i], (130 + i, 110), (10 + i, 5), 3)
        Image.fromarray((x * 255).astype(np.uint8)).save(files[-1], quality=95)
    m = modelfile.load(saved)
    got = [model.predictions(model.logits(images.read(f)[0][None, :], m.W, m.b))[0] for f in files]
    same = np.mean(np.array(got) == classes_on_arrays(saved, mnist_data.test.images[:40]))
    assert same >= 0.9, same  # resampled twice, a borderline digit may flip


def test_npy_and_idx_inputs(mnist_data, saved: Path, tmp_path: Path, mnist_dir: Path) -> None:
    digit = mnist_data.test.images[3]
    np.save(tmp_path / "u8.npy", digit.reshape(28, 28))
    np.save(tmp_path / "flat.npy", digit / 255.0)
    proc = predict(
        str(saved),
        str(tmp_path / "u8.npy"),
        str(tmp_path / "flat.npy"),
        str(mnist_dir / "t10k-images-idx3-ubyte.gz"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = classes_on_arrays(saved, mnist_data.test.images)
    assert out[0]["prediction"] == out[1]["prediction"] == expected[3]
    assert len(out) == 2 + 10_000 and [o["prediction"] for o in out[2:]] == expected


def test_bad_files_get_one_line_each_and_the_good_are_still_predicted(
    mnist_data, saved: Path, tmp_path: Path
) -> None:
    np.save(tmp_path / "small.npy", np.zeros((10, 10), np.uint8))
    np.save(tmp_path / "range.npy", np.full((28, 28), 2.0))
    (tmp_path / "junk.png").write_bytes(b"not a png")
    Image.fromarray(mnist_data.test.images[0].reshape(28, 28)).save(tmp_path / "good.png")
    proc = predict(
        str(saved),
        str(tmp_path / "small.npy"),
        str(tmp_path / "good.png"),
        str(tmp_path / "junk.png"),
        str(tmp_path / "range.npy"),
        str(tmp_path / "none.png"),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("scratchlr: error: ") for line in errors)
    assert "28x28 or 784" in errors[0] and "Pillow can read" in errors[1] and "[0, 1]" in errors[2]
    assert "no such file" in errors[3]
    assert proc.stdout.splitlines() == [proc.stdout.splitlines()[0]] and "good.png: " in proc.stdout


def test_an_images_bytes_give_exactly_the_pixels_training_sees(mnist_data, tmp_path: Path) -> None:
    """Bytes read from a PNG, a uint8 .npy or an IDX file (gzipped under a name without .gz:
    known by its magic bytes) are scaled by model.pixels itself, bit for bit; a 28x28 picture
    of dark ink on paper is inverted as bytes first."""
    digits = mnist_data.test.images[:3].reshape(3, 28, 28)
    Image.fromarray(digits[0]).save(tmp_path / "a.png")
    Image.fromarray(255 - digits[1]).save(tmp_path / "paper.png")
    np.save(tmp_path / "a.npy", digits[2])
    write_idx(tmp_path / "digits", digits, compress=True)
    assert (tmp_path / "digits").read_bytes()[:2] == b"\x1f\x8b"  # gzip, though not named so
    expected = model.pixels(mnist_data.test.images[:3])
    got = [
        images.read(tmp_path / "a.png")[0],
        images.read(tmp_path / "paper.png")[0],
        images.read(tmp_path / "a.npy")[0],
        *images.read(tmp_path / "digits"),
    ]
    for x, e in zip(got, [expected[0], expected[1], expected[2], *expected]):
        assert x.dtype == np.float32 and x.tobytes() == e.tobytes()
    assert (
        np.sum(digits[0] / np.float32(255) != model.pixels(digits[0])) > 0
    )  # the division would differ


def test_pictures_without_pillow_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(images.ImageError, match=r"pip install 'scratchlr\[plot\]'"):
        images.read(tmp_path / "a.png")


def test_a_blank_picture_is_refused() -> None:
    with pytest.raises(images.ImageError, match="blank"):
        images.mnist_like(np.ones((50, 40), np.float32))


def a_seven(mnist_data, side: int = 112) -> np.ndarray:
    """Test image 0 (a 7) scaled up: light ink on black, (side, side) uint8."""
    return np.asarray(
        Image.fromarray(mnist_data.test.images[0].reshape(28, 28)).resize(
            (side, side), Image.BICUBIC
        )
    )


def test_real_world_pictures(mnist_data, saved: Path, tmp_path: Path) -> None:
    """A web canvas's transparent PNG, a 16-bit scan, grey paper with noise, a phone photo
    stored sideways with its EXIF orientation: each is the 7 it shows."""
    ink = a_seven(mnist_data)
    rgba = np.zeros((112, 112, 4), np.uint8)
    rgba[..., 3] = ink  # black strokes, their opacity the ink
    Image.fromarray(rgba, "RGBA").save(tmp_path / "canvas.png")
    Image.fromarray(65535 - ink.astype(np.uint16) * 257).save(tmp_path / "scan16.png")
    noise = np.random.default_rng(0).normal(0, 0.03, ink.shape)
    grey = np.clip(0.7 - 0.6 * ink / 255 + noise, 0, 1)
    Image.fromarray((grey * 255).astype(np.uint8)).save(tmp_path / "grey-paper.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(255 - ink).transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "phone.jpg", exif=exif
    )
    files = ["canvas.png", "scan16.png", "grey-paper.png", "phone.jpg"]
    proc = predict(str(saved), *(str(tmp_path / f) for f in files), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [o["prediction"] for o in json.loads(proc.stdout)] == [7, 7, 7, 7]


def test_more_bad_inputs_get_one_line_naming_the_file(
    saved: Path, tmp_path: Path, mnist_dir: Path
) -> None:
    Image.new("L", (9500, 9500), 255).save(
        tmp_path / "huge.png"
    )  # past Pillow's bomb warning, 89 Mpx
    Image.new("L", (60, 60), 0).save(tmp_path / "black.png")
    np.save(tmp_path / "black.npy", np.zeros((28, 28), np.uint8))
    np.save(tmp_path / "nan.npy", np.full(784, np.nan))
    labels = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    names = [
        tmp_path / "huge.png",
        tmp_path / "black.png",
        tmp_path / "black.npy",
        tmp_path / "nan.npy",
        labels,
    ]
    proc = predict(str(saved), *map(str, names))
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert [line.split(": ")[2] for line in errors] == [str(n) for n in names]
    for line, words in zip(errors, ["too large", "blank", "blank", "[0, 1]", "labels"]):
        assert words in line
