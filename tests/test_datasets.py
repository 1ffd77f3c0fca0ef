"""Data sets as records: Fashion-MNIST and KMNIST down the whole path, on small files.

Their real files cannot be fetched here (no internet), so each test writes small IDX files
(300 training and 100 test images of 28x28) under the records' published names, serves them
from a mirror on 127.0.0.1, and swaps their MD5s (of the .gz files, as the published ones
are), sizes and shapes into the record, and that mirror as its public one, with
``dataclasses.replace``. The commands run in this process (``main([...])``), where the
records are patched: download, verify, cache, train, evaluate, predict, plot and search.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_bytes
from mirror import Mirror

from scratchlr.cli.main import main
from scratchlr.dataset import download, splits, store
from scratchlr.dataset.records import DATASETS, GZ_FILE, PAYLOAD, DataFile, Dataset
from scratchlr.files import modelfile

ROOT = Path(__file__).resolve().parents[1]
TRAIN = 300
TEST = 100
SIDE = 28


def small_arrays(seed: int) -> dict[str, np.ndarray]:
    """Images and labels a model can learn, but not perfectly: class c lights rows 2c+2..2c+5,
    over noise, and one label in ten is then drawn at random."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", TRAIN), ("test", TEST)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, (n, SIDE, SIDE)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 2 : 2 * c + 6, 4:24] = 255
        relabelled = rng.random(n) < 0.1
        labels[relabelled] = rng.integers(0, 10, relabelled.sum())
        arrays[f"{part}_images"] = images
        arrays[f"{part}_labels"] = labels
    return arrays


def small_record(record: Dataset, served: dict[str, bytes], url: str) -> Dataset:
    """``record`` with the MD5s (of the .gz files), sizes and shapes of the small files, and
    ``url`` as its one public mirror."""
    files = {}
    for key, f in record.files.items():
        payload = gzip.decompress(served[f.name])
        shape = (TRAIN if key.startswith("train") else TEST, *f.shape[1:])
        md5 = hashlib.md5(served[f.name]).hexdigest()
        files[key] = DataFile(f.name, md5, GZ_FILE, len(payload), shape)
    return dataclasses.replace(record, files=files, mirrors=(url,))


@pytest.fixture(params=["fashion-mnist", "kmnist"])
def small(request, monkeypatch: pytest.MonkeyPatch):
    """(the patched record, its mirror): the small files under the record's names, served on
    127.0.0.1, and the record in :data:`DATASETS` pointing at them."""
    record = DATASETS[request.param]
    arrays = small_arrays(seed=len(request.param))
    served = {
        f.name: gzip.compress(idx_bytes(arrays[key]), mtime=0) for key, f in record.files.items()
    }
    mirror = Mirror(served)
    patched = small_record(record, served, mirror.url)
    monkeypatch.setitem(DATASETS, record.name, patched)
    monkeypatch.delenv(download.BUILTIN_ENV)  # the record's mirrors are tried: the loopback one
    yield patched, mirror
    mirror.close()


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``main(args)`` here, where the records are patched: (exit status, stdout, stderr)."""
    try:
        status = main(list(args))
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def test_the_records_as_published() -> None:
    """The MNIST record keeps its payload MD5s; the two others' published MD5s are of the .gz
    files; all are 60,000 + 10,000 images of 28x28 in ten classes, under MNIST's file names."""
    mnist = DATASETS["mnist"]
    assert list(DATASETS) == ["mnist", "fashion-mnist", "kmnist"]
    assert mnist.files["train_images"].md5 == "6bbc9ace898e44ae57da46a324031adb"
    assert mnist.env == "SCRATCHLR_DATA" and mnist.folder == "data/mnist"
    assert mnist.named_classes is None  # digits: the reports show the numbers alone
    assert DATASETS["fashion-mnist"].files["test_labels"].md5 == "bb300cfdad3c16e7a12a480ee83cd310"
    assert DATASETS["kmnist"].files["train_images"].md5 == "bdb82020997e1d708af4cf47b453dcf7"
    assert DATASETS["fashion-mnist"].named_classes[9] == "Ankle boot"
    assert DATASETS["kmnist"].classes[3] == "tsu"
    for record in DATASETS.values():
        kinds = {f.md5_of for f in record.files.values()}
        assert kinds == ({PAYLOAD} if record is mnist else {GZ_FILE})
        assert (record.train_size, record.test_size, record.side) == (60000, 10000, 28)
        assert (record.pixels, record.num_classes) == (784, 10)
        assert record.files["train_images"].size == 47040016
        assert [f.name for f in record.files.values()] == [f.name for f in mnist.files.values()]


def test_the_whole_path_on_a_loopback_mirror(
    small, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, mirror = small
    d = str(tmp_path / "data")
    status, out, err = run(capsys, "download", "--dataset", record.name, "--data-dir", d)
    assert status == 0 and out.startswith("fetched "), err
    assert sorted(mirror.requests) == sorted("/" + f.name for f in record.files.values())
    assert run(capsys, "download", "--dataset", record.name, "--data-dir", d)[1] == (
        f"{record.title} already verified in {d}\n"
    )
    stamps = json.loads((Path(d) / store.STAMPS).read_text())
    assert {f.name for f in record.files.values()} <= set(stamps)
    mirror.close()  # from here on, the cache alone

    model = tmp_path / "m.npz"
    train = ["--dataset", record.name, "--data-dir", d, "--num-steps", "60", "--quiet"]
    status, out, err = run(capsys, *train, "--validation-size", "50", "--save", str(model))
    assert status == 0 and out.startswith("Initial loss= 2.302585"), err
    accuracy = float(re.search(r"Testset Accuracy: (\S+)", out).group(1))
    assert accuracy > 0.5  # ten classes, each its own rows: learnable in 60 steps
    too_many = run(capsys, *train, "--validation-size", "300")  # the record's 300, not 60,000
    assert too_many[0] == 2 and "--validation-size must be in [0, 300)" in too_many[2]

    m = modelfile.load(model)  # the model file names its data set
    assert m.config.dataset == record.name and m.dataset is record
    with np.load(model) as f:
        data = json.loads(str(f["meta"]))["data"]
    assert data["name"] == record.name
    assert data["md5"] == {f.name: f.md5 for f in record.files.values()}

    status, out, err = run(capsys, "evaluate", str(model), "--data-dir", d)  # the model's data
    assert status == 0, err
    assert out.startswith(f"{model}, test split: {TEST} examples")
    assert f"accuracy {accuracy:.4f}" in out
    for c, name in enumerate(record.classes):
        assert re.search(rf"^ +{c} .* {re.escape(name)}$", out, re.M), name  # the table
    pair = re.search(r"^most confused: (\d+) (.+?) as (\d+) (.+?) \(\d+\)", out, re.M)
    assert pair and [record.classes[int(pair[1])], record.classes[int(pair[3])]] == [
        pair[2],
        pair[4],
    ]

    picture = tmp_path / "x.npy"
    test_images = splits.load(record, d).test.images
    np.save(picture, test_images[0].reshape(SIDE, SIDE))
    status, out, err = run(capsys, "predict", str(model), str(picture))
    said = int(out.split(": ")[1].split()[0])
    assert status == 0 and out.startswith(f"{picture}: {said} {record.classes[said]}  (")

    from scratchlr.reports import plots

    drawn = {}
    real_save = plots.save

    def save(fig, path: Path) -> None:
        drawn[Path(path).name] = fig
        real_save(fig, path)

    monkeypatch.setattr(plots, "save", save)
    figs = tmp_path / "figs"
    status, out, err = run(capsys, "plot", str(model), "--data-dir", d, "--out", str(figs))
    assert status == 0, err
    assert {p.name for p in figs.iterdir()} == {
        "templates.png",
        "confusion.png",
        "most_wrong.png",
        "explain.png",
    }
    titles = [ax.get_title() for ax in drawn["templates.png"].axes[:10]]
    assert titles == [f"class {c} {name}" for c, name in enumerate(record.classes)]
    ticks = [t.get_text() for t in drawn["confusion.png"].axes[0].get_yticklabels()]
    assert ticks == [f"{c} {name}" for c, name in enumerate(record.classes)]
    wrong = " ".join(ax.get_title() for ax in drawn["most_wrong.png"].axes)
    assert any(name in wrong for name in record.classes)
    label = splits.load(record, d).test.labels[0]
    assert drawn["explain.png"].axes[0].get_title() == f"test image 0 ({record.classes[label]})"
    panels = [ax.get_title() for ax in drawn["explain.png"].axes[1:3]]
    assert all(any(f" {name}: pixels" in t for name in record.classes) for t in panels), panels


def test_a_search_reads_the_chosen_data_set(
    small, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--dataset is a Config field: a search's trials train on it (its training files alone,
    fetched from the record's mirror), and its best trial's command names it."""
    record, mirror = small
    d = str(tmp_path / "data")
    status, out, err = run(
        capsys,
        "search",
        "--dataset",
        record.name,
        "--data-dir",
        d,
        "--validation-size",
        "50",
        "--num-steps",
        "30",
        "--learning-rate",
        "0.1,0.5",
        "--quiet",
    )
    assert status == 0, err
    assert sorted(mirror.requests) == sorted(
        "/" + record.files[key].name for key in ("train_images", "train_labels")
    )
    assert f"--dataset {record.name}" in out.splitlines()[-1]  # the best trial's command


def test_a_bad_md5_is_rejected_and_nothing_is_left(
    small, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, mirror = small
    labels = record.files["test_labels"]
    wrong = dataclasses.replace(labels, md5="0" * 32)
    monkeypatch.setitem(
        DATASETS,
        record.name,
        dataclasses.replace(record, files={**record.files, "test_labels": wrong}),
    )
    d = tmp_path / "data"
    d.mkdir()
    status, out, err = run(capsys, "download", "--dataset", record.name, "--data-dir", str(d))
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert labels.name in err and "MD5 of the .gz file is" in err and record.title in err
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == sorted(
        n for f in record.files.values() if f is not labels for n in (f.name, f.plain_name + ".npy")
    )  # the good files and their caches, and nothing of the bad one under any name
    assert not (d / store.LOCK).exists()  # nor the lock the failed call took


def test_an_uncompressed_copy_cannot_be_verified_by_a_gz_md5(
    small, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    record, mirror = small
    d = tmp_path / "data"
    assert run(capsys, "download", "--dataset", record.name, "--data-dir", str(d))[0] == 0
    f = record.files["train_labels"]
    (d / f.plain_name).write_bytes(gzip.decompress((d / f.name).read_bytes()))
    (d / f.name).unlink()
    with pytest.raises(splits.DataError, match="uncompressed copy cannot be verified") as info:
        splits.load_arrays(record, d)
    assert "\n" not in str(info.value) and f.name in str(info.value)
    kept = (d / f.plain_name).read_bytes()
    status, out, err = run(
        capsys, "--dataset", record.name, "--data-dir", str(d), "--validation-size", "50", "--quiet"
    )
    assert status == 1 and "uncompressed copy cannot be verified" in err, err
    assert len(err.strip().splitlines()) == 1
    assert (d / f.plain_name).read_bytes() == kept  # refused, and left as it was


def test_a_folder_of_another_data_set_is_named_and_left_alone(
    small, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three data sets share their file names: a folder holding one's verified files, given
    with another's --dataset, is that data set's, not a cache of bad copies to delete."""
    record, mirror = small
    d = tmp_path / "data"
    assert run(capsys, "download", "--dataset", record.name, "--data-dir", str(d))[0] == 0
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.suffix == ".gz"}
    other = "kmnist" if record.name == "fashion-mnist" else "fashion-mnist"
    arrays = small_arrays(seed=99)  # other small files under the same names
    served = {f.name: gzip.compress(idx_bytes(arrays[k])) for k, f in DATASETS[other].files.items()}
    monkeypatch.setitem(DATASETS, other, small_record(DATASETS[other], served, mirror.url))
    status, out, err = run(
        capsys, "--dataset", other, "--data-dir", str(d), "--validation-size", "50", "--quiet"
    )
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert f"is {record.title}'s file, not {DATASETS[other].title}'s" in err
    assert f"--dataset {record.name}" in err
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.suffix == ".gz"} == before


def test_a_data_set_not_there_is_named(
    small, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    record, mirror = small
    d = str(tmp_path / "none")
    status, out, err = run(capsys, "gradcheck", "--dataset", record.name, "--data-dir", d)
    assert f"{record.title} not found in {d}" in err and "gradcheck" in out
    with pytest.raises(splits.DataError, match=f"^{record.title} not found in .*--dataset"):
        splits.load(record, d)


def test_bare_python_m_scratchlr_still_reads_mnist_from_data_mnist(
    mnist_source: Path, tmp_path: Path, golden_lines: list[str]
) -> None:
    """No flag, no variable: the seed's run, on ./data/mnist, its lines as the seed's."""
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    for f in DATASETS["mnist"].files.values():
        (tmp_path / "data" / "mnist" / f.name).symlink_to(splits.find(mnist_source, f))
    env = {k: v for k, v in os.environ.items() if k not in ("SCRATCHLR_DATA",)}
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlr"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()  # as test_cli's default run reads them
    assert [re.sub(r"\d", "#", x) for x in lines] == [re.sub(r"\d", "#", x) for x in golden_lines]
    assert lines[0].startswith("Initial loss= 2.302585125") and lines[-1] == golden_lines[-1]
    assert (tmp_path / "data" / "mnist" / store.STAMPS).is_file()  # it read there


def test_a_search_over_data_sets_reads_each_from_its_own_folder(
    small, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """One --data-dir for trials of several data sets would mix their files: a usage error."""
    record, mirror = small
    d = str(tmp_path / "data")
    status, out, err = run(
        capsys,
        "search",
        "--dataset",
        f"mnist,{record.name}",
        "--validation-size",
        "50",
        "--data-dir",
        d,
        "--quiet",
    )
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "trials vary --dataset" in err and not mirror.requests
