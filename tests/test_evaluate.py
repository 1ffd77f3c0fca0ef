"""Model files and the evaluation report: round trips, bad files, and scikit-learn's numbers."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from helpers import run_cli, scores_by_hand

from scratchlr import train
from scratchlr.backend import numpy_backend
from scratchlr.config import Config
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS
from scratchlr.files import modelfile
from scratchlr.reports import evaluate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sklearn_metrics() -> dict:
    return json.loads((DATA / "sklearn_metrics.json").read_text())


def test_confusion_matrix_and_scores_equal_sklearn(sklearn_metrics: dict) -> None:
    y = np.array(sklearn_metrics["y"])
    yhat = np.array(sklearn_metrics["yhat"])
    M = evaluate.confusion_matrix(y, yhat, 10)
    assert M.dtype.kind == "i" and M.tolist() == sklearn_metrics["confusion_matrix"]
    scores = evaluate.precision_recall_f1(M)
    for name in ("precision", "recall", "f1"):
        np.testing.assert_allclose(scores[name], sklearn_metrics[name], rtol=1e-12, atol=0)
        assert scores[name].mean() == pytest.approx(sklearn_metrics["macro"][name], rel=1e-12)
    assert scores["support"].tolist() == sklearn_metrics["support"]
    assert scores["precision"][7] == 0 and scores["recall"][9] == 0  # the two zero divisions


def test_most_confused_pairs() -> None:
    M = np.array([[5, 2, 0], [7, 1, 2], [0, 2, 9]])
    assert evaluate.most_confused(M, k=3) == [(1, 0, 7), (0, 1, 2), (1, 2, 2)]
    assert evaluate.most_confused(np.eye(3, dtype=int)) == []


@pytest.fixture(scope="module")
def trained(mnist_data) -> train.Result:
    return train.train(
        mnist_data, train.Config(num_steps=300), numpy_backend(), emit=lambda line: None
    )


def test_report_on_a_model(mnist_data, trained: train.Result) -> None:
    r = evaluate.report(trained.W, trained.b, mnist_data.test, numpy_backend())
    M = np.array(r["confusion_matrix"])
    assert (
        M.sum() == r["examples"] == 10_000
        and M.sum(axis=1).tolist() == np.bincount(mnist_data.test.labels).tolist()
    )
    loss, accuracy = scores_by_hand(
        trained.W, trained.b, mnist_data.test.images, mnist_data.test.labels
    )
    assert r["accuracy"] == pytest.approx(
        accuracy, abs=2e-4
    )  # float32 logits may tie-break one image apart
    assert r["loss"] == pytest.approx(loss, rel=1e-5)
    text = evaluate.format_report(r, "test")
    assert "confusion matrix" in text and text.count("\n") > 25
    json.dumps(r)  # plain values only


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_is_bit_exact(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(784, 10)).astype(dtype)
    b = rng.normal(size=10).astype(dtype)
    config = Config(
        dtype=dtype, epochs=2, momentum=0.5, lr_schedule="cosine", eta_min=0.01, validation_size=100
    )
    path = tmp_path / "m.npz"
    modelfile.save(path, modelfile.ModelFile(W, b, config, 0.8, 0.9))
    m = modelfile.load(path)
    assert (
        m.W.tobytes() == W.tobytes()
        and m.b.tobytes() == b.tobytes()
        and m.W.dtype == np.dtype(dtype)
    )
    assert m.config == config and (m.validation_accuracy, m.test_accuracy) == (0.8, 0.9)
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
    assert meta["format_version"] == modelfile.FORMAT_VERSION and meta["dtype"] == dtype
    assert (
        meta["config"]["num_steps"] is None and meta["config"]["batching"] is None
    )  # as given, not resolved
    assert meta["data"]["validation_size"] == 100
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # atomic: no temporary left


def test_a_file_from_before_the_config_held_the_validation_size(tmp_path: Path) -> None:
    """Format 1 files written before: the config's defaults resolved, the split size in ``data``."""
    old = {"num_steps": 1000, "batching": "repeat", "validate": True, "early_stopping": 3}
    path = good_file(
        tmp_path / "old.npz",
        meta=np.array(
            json.dumps(
                {
                    "format_version": 1,
                    "dtype": "float32",
                    "config": old,
                    "data": {"validation_size": 1000},
                }
            )
        ),
    )
    assert modelfile.load(path).config == Config(validation_size=1000, **old)


def test_a_model_file_names_its_dataset_and_is_checked_against_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data set's name and its files' MD5s are written; W's shape is checked against the
    data set's record when the file is read."""
    kmnist = DATASETS["kmnist"]
    path = tmp_path / "k.npz"
    W = np.zeros((784, 10), np.float32)
    modelfile.save(path, modelfile.ModelFile(W, W[0], Config(dataset="kmnist")))
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
    assert meta["config"]["dataset"] == meta["data"]["name"] == "kmnist"
    assert meta["data"]["md5"] == {f.name: f.md5 for f in kmnist.files.values()}
    assert modelfile.load(path).dataset is kmnist
    five = dataclasses.replace(kmnist, classes=kmnist.classes[:5])  # a record of 5 classes
    monkeypatch.setitem(DATASETS, "kmnist", five)
    with pytest.raises(modelfile.ModelFileError, match=r"W must be \(784, 5\) .* for KMNIST"):
        modelfile.load(path)


def test_a_format_1_file_from_before_datasets_were_records(tmp_path: Path) -> None:
    """As the format-1 writer wrote it: its data "MNIST", no dataset in its config, and "step"
    where the config now says "implementation". It loads as what it means."""
    # the config's fields as format 1 wrote them: before --dataset, with "step"
    config = dataclasses.asdict(Config(num_steps=300, implementation="reference"))
    del config["dataset"]
    del config["optimizer"]
    config["step"] = config.pop("implementation")
    data = {
        "name": "MNIST",
        "validation_size": 5000,
        "md5": {f.name: f.md5 for f in DATASETS["mnist"].files.values()},
    }
    meta = {"format_version": 1, "dtype": "float32", "config": config, "data": data}
    path = good_file(tmp_path / "old.npz", meta=np.array(json.dumps(meta)))
    m = modelfile.load(path)
    assert m.config.dataset == "mnist" and m.dataset is DATASETS["mnist"]
    assert m.config.implementation == "reference" and m.config.num_steps == 300
    data["name"] = "KMNIST"  # a format-1 file's data is MNIST, as its config must agree
    meta["config"] = {**config, "dataset": "mnist"}
    path = good_file(tmp_path / "odd.npz", meta=np.array(json.dumps(meta)))
    with pytest.raises(modelfile.ModelFileError, match="its data is KMNIST but its config says"):
        modelfile.load(path)


def good_file(path: Path, **arrays) -> Path:
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    meta = {"format_version": 1, "dtype": "float32"}
    parts = {"W": W, "b": b, "meta": np.array(json.dumps(meta)), **arrays}
    np.savez(path, **{k: v for k, v in parts.items() if v is not None})
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD = {
    "missing": (lambda p: p / "none.npz", "no such file"),
    "empty": (lambda p: written(p / "e.npz", b""), "empty"),
    "not a zip": (lambda p: written(p / "t.npz", b"hello"), "not a zip"),
    "truncated": (
        lambda p: written(p / "c.npz", good_file(p / "g.npz").read_bytes()[:3000]),
        "truncated",
    ),
    "pickled object": (
        lambda p: good_file(p / "o.npz", W=np.array([object()] * 7840).reshape(784, 10)),
        "pickled",
    ),
    "wrong shape": (
        lambda p: good_file(p / "s.npz", W=np.zeros((10, 784), np.float32)),
        "(784, 10)",
    ),
    "no b": (lambda p: good_file(p / "n.npz", b=None), "no b"),
    "non-finite": (
        lambda p: good_file(p / "f.npz", b=np.array([np.nan] + [0] * 9, np.float32)),
        "finite",
    ),
    "wrong dtype": (
        lambda p: good_file(p / "d.npz", W=np.zeros((784, 10), np.int32)),
        "float32 or float64",
    ),
    "newer format": (
        lambda p: good_file(p / "v.npz", meta=np.array(json.dumps({"format_version": 99}))),
        "newer",
    ),
    "no meta json": (lambda p: good_file(p / "j.npz", meta=np.array("{oops")), "meta"),
    "bad interrupted_at": (
        lambda p: good_file(
            p / "i.npz",
            meta=np.array(
                json.dumps({"format_version": 1, "dtype": "float32", "interrupted_at": "soon"})
            ),
        ),
        "interrupted_at",
    ),
}


@pytest.mark.parametrize("kind", BAD, ids=BAD.keys())
def test_bad_model_files_are_refused_with_one_line(tmp_path: Path, kind: str) -> None:
    make, words = BAD[kind]
    path = make(tmp_path)
    with pytest.raises(modelfile.ModelFileError) as err:
        modelfile.load(path)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


def test_a_file_cut_short_at_its_end_is_called_truncated(tmp_path: Path) -> None:
    data = good_file(tmp_path / "g.npz").read_bytes()
    cut = written(tmp_path / "cut.npz", data[:-10])
    assert not zipfile.is_zipfile(cut)
    with pytest.raises(modelfile.ModelFileError, match="truncated or damaged"):
        modelfile.load(cut)


@pytest.mark.parametrize("where", [100, 500], ids=["npy-header", "payload"])
def test_a_damaged_member_is_refused(tmp_path: Path, where: int) -> None:
    """The zip's directory is whole, but W's stored bytes are garbled (np.savez does not
    compress): its .npy header no longer parses, or its CRC fails."""
    data = bytearray(good_file(tmp_path / "g.npz").read_bytes())
    data[where : where + 10] = b"\x01" * 10
    bad = written(tmp_path / "bad.npz", bytes(data))
    with pytest.raises(modelfile.ModelFileError, match="damaged"):
        modelfile.load(bad)


def test_save_then_evaluate_in_fresh_processes(mnist_dir: Path, mnist_data, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    trained = run_cli("--data-dir", str(mnist_dir), "--num-steps", "200", "--save", str(model))
    assert trained.returncode == 0, trained.stderr
    m = modelfile.load(model)
    assert m.config == Config(num_steps=200)
    assert f"Testset Accuracy: {m.test_accuracy:.4f}" == trained.stdout.splitlines()[-1]
    test_acc = scores_by_hand(m.W, m.b, mnist_data.test.images, mnist_data.test.labels)[1]
    validation_acc = scores_by_hand(
        m.W, m.b, mnist_data.validation.images, mnist_data.validation.labels
    )[1]
    assert m.test_accuracy == pytest.approx(test_acc, abs=2e-4)
    assert m.validation_accuracy == pytest.approx(
        validation_acc, abs=4e-4
    )  # of 5,000: within two ties
    text = run_cli("evaluate", str(model), "--data-dir", str(mnist_dir))
    assert text.returncode == 0, text.stderr
    shown = re.search(
        r"10000 examples, loss \S+, accuracy (\S+)$", text.stdout.splitlines()[0]
    ).group(1)
    assert float(shown) == pytest.approx(test_acc, abs=3e-4)  # rounded to 4 digits, within a tie
    report = json.loads(
        run_cli(
            "evaluate", str(model), "--data-dir", str(mnist_dir), "--json", "--split", "validation"
        ).stdout
    )
    assert report["examples"] == 5000 and report["accuracy"] == pytest.approx(
        validation_acc, abs=4e-4
    )
    on_train = json.loads(
        run_cli(
            "evaluate", str(model), "--data-dir", str(mnist_dir), "--json", "--split", "train"
        ).stdout
    )
    loss, accuracy = scores_by_hand(m.W, m.b, mnist_data.train.images, mnist_data.train.labels)
    assert on_train["examples"] == 55_000 and on_train["split"] == "train"
    assert on_train["accuracy"] == pytest.approx(accuracy, abs=2e-4)
    assert on_train["loss"] == pytest.approx(loss, rel=1e-5)


def test_a_config_rebuilt_from_a_model_file_trains_that_model_again(
    mnist_dir: Path, tmp_path: Path
) -> None:
    """The flags as given come back as the Config they made, and that config, trained again
    in this process, makes the saved weights bit for bit."""
    model = tmp_path / "m.npz"
    flags = [
        "--epochs",
        "1",
        "--shuffle",
        "--seed",
        "7",
        "--momentum",
        "0.9",
        "--learning-rate",
        "0.3",
        "--lr-schedule",
        "cosine",
        "--average",
        "50",
        "--validation-size",
        "2000",
        "--early-stopping",
        "4",
        "--display-step",
        "50",
        "--weight-decay",
        "1e-4",
        "--step",
        "reference",
    ]
    proc = run_cli("--data-dir", str(mnist_dir), *flags, "--save", str(model))
    assert proc.returncode == 0, proc.stderr
    m = modelfile.load(model)
    assert m.config == Config(
        epochs=1,
        shuffle=True,
        seed=7,
        momentum=0.9,
        learning_rate=0.3,
        lr_schedule="cosine",
        average=50,
        validation_size=2000,
        early_stopping=4,
        display_step=50,
        weight_decay=1e-4,
        implementation="reference",
    )
    assert dataclasses.replace(m.config, epochs=3).epochs == 3
    again = train.train(
        splits.load(DATASETS["mnist"], str(mnist_dir), m.config.validation_size),
        m.config,
        numpy_backend(),
        emit=lambda line: None,
    )
    assert again.W.tobytes() == m.W.tobytes() and again.b.tobytes() == m.b.tobytes()
    assert again.lines == proc.stdout.splitlines()


@pytest.mark.parametrize("kind", ["missing", "not a zip", "pickled object", "newer format"])
def test_evaluate_a_bad_model_is_one_line_exit_1(tmp_path: Path, kind: str) -> None:
    path = BAD[kind][0](tmp_path)
    proc = run_cli("evaluate", str(path), "--data-dir", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr


def test_model_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Written through a private temporary file, the model still gets 0666 less the umask."""
    old = os.umask(0o022)
    try:
        modelfile.save(
            tmp_path / "m.npz",
            modelfile.ModelFile(
                np.zeros((784, 10), np.float32), np.zeros(10, np.float32), Config()
            ),
        )
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_archives_that_are_not_model_files(tmp_path: Path) -> None:
    """Members that are not .npy, or a meta whose data block is wrong: one line each."""
    raw = tmp_path / "raw.npz"
    with zipfile.ZipFile(raw, "w") as z:
        for name in ("W", "b", "meta"):
            z.writestr(name, b"not an array")
    with pytest.raises(modelfile.ModelFileError, match=".npy arrays"):
        modelfile.load(raw)
    for config, data, words in (
        (None, {}, "not JSON objects"),
        ({}, "MNIST", "not JSON objects"),
        ({}, {"validation_size": "abc"}, "not a training config"),
        ({}, {"validation_size": 70000}, "--validation-size must be in"),
        ({"learning_rate": -1}, {}, "--learning-rate must be positive"),
        ({"bogus": 1}, {}, "bogus"),
    ):
        meta = np.array(
            json.dumps({"format_version": 1, "dtype": "float32", "config": config, "data": data})
        )
        with pytest.raises(modelfile.ModelFileError, match=words) as info:
            modelfile.load(good_file(tmp_path / "d.npz", meta=meta))
        assert "\n" not in str(info.value)


def test_an_unreadable_model_file(tmp_path: Path) -> None:
    path = good_file(tmp_path / "m.npz")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who can read any file")
        with pytest.raises(modelfile.ModelFileError, match="cannot read"):
            modelfile.load(path)
    finally:
        path.chmod(0o644)
