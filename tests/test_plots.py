"""The pictures: written, not blank, and showing what they say they show."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the [plot] extra) is not installed")
from helpers import run_cli  # noqa: E402
from PIL import Image  # noqa: E402

import scratchlr  # noqa: E402
from scratchlr import model, train  # noqa: E402
from scratchlr.backend import numpy_backend  # noqa: E402
from scratchlr.cli.main import main  # noqa: E402
from scratchlr.evaluation import predict_split  # noqa: E402
from scratchlr.files import history, modelfile  # noqa: E402
from scratchlr.reports import plots  # noqa: E402
from scratchlr.reports.evaluate import confusion_matrix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result(mnist_data) -> train.Result:
    config = train.Config(
        epochs=1, shuffle=True, momentum=0.9, learning_rate=0.2, validate=True, display_step=100
    )
    return train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)


def test_weight_template_of_0_looks_like_a_0(mnist_data, result: train.Result) -> None:
    fig = plots.weight_templates(result.W)
    panels = [ax for ax in fig.axes if ax.get_title().startswith("class")]
    assert [ax.get_title() for ax in panels] == [f"class {c}" for c in range(10)]
    shown = panels[0].images[0].get_array()
    assert np.array_equal(np.asarray(shown), result.W[:, 0].reshape(28, 28))
    lo, hi = panels[0].images[0].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(result.W).max())  # one scale, centred at 0
    assert all(ax.images[0].get_clim() == (lo, hi) for ax in panels)
    mean_zero = model.pixels(mnist_data.test.images[mnist_data.test.labels == 0]).mean(axis=0)
    assert np.corrcoef(result.W[:, 0], mean_zero)[0, 1] > 0.1


def test_confusion_counts_sum_to_the_test_set(mnist_data, result: train.Result) -> None:
    yhat, _ = predict_split(result.W, result.b, mnist_data.test, numpy_backend())
    M = confusion_matrix(mnist_data.test.labels, yhat, 10)
    fig = plots.confusion(M)
    counts = [int(t.get_text()) for t in fig.axes[0].texts]
    assert len(counts) == 100 and sum(counts) == 10_000
    assert np.array_equal(np.array(counts).reshape(10, 10), M)


def test_most_wrong_are_wrong_and_sorted(mnist_data, result: train.Result) -> None:
    fig = plots.most_wrong(
        result.W, result.b, np.asarray(mnist_data.test.images), mnist_data.test.labels
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 25
    pairs = [t.split("\n")[0].replace("true ", "").split(", said ") for t in titles]
    assert all(a != b for a, b in pairs)
    probs = [float(t.split("p = ")[1].rstrip(")")) for t in titles]
    assert probs == sorted(probs, reverse=True)


def test_explain_panels_sum_to_the_logits(mnist_data, result: train.Result) -> None:
    x = model.pixels(mnist_data.test.images[0])
    fig = plots.explain(result.W, result.b, x)
    z = x @ result.W + result.b
    first, second = np.argsort(-z)[:2]
    for ax, c in zip(fig.axes[1:3], (first, second)):
        part = np.asarray(ax.images[0].get_array())
        assert part.sum() + result.b[c] == pytest.approx(z[c], rel=1e-5)
        assert ax.get_title().startswith(f"class {c}: ")


def test_curves_from_a_history_file(result: train.Result, tmp_path: Path) -> None:
    history.write_csv(tmp_path / "h.csv", result.history)
    records = history.read_csv(tmp_path / "h.csv")
    loss_ax, acc_ax = plots.curves(records).axes
    assert [line.get_label() for line in loss_ax.lines] == [
        "train: its batches, current weights",
        "validation: current weights",
    ]
    validated = [r for r in result.history if r.val_accuracy is not None]
    assert (
        len(validated) == 1 and len(result.history) == 6
    )  # steps 1, 100, ..., 400 and the epoch's end, 430
    assert list(acc_ax.lines[0].get_xdata()) == [
        r.step for r in result.history
    ]  # each series at its own steps
    assert list(acc_ax.lines[1].get_xdata()) == [r.step for r in validated]
    assert list(acc_ax.lines[1].get_ydata()) == pytest.approx([r.val_accuracy for r in validated])
    averaged = plots.curves(records, averaged=True).axes[0]
    assert averaged.lines[1].get_label() == "validation: averaged weights"


def test_train_save_evaluate_predict_plot_from_fresh_processes(
    mnist_data, mnist_dir: Path, tmp_path: Path
) -> None:
    data = ["--data-dir", str(mnist_dir)]
    m = tmp_path / "m.npz"
    h = tmp_path / "h.csv"
    figs = tmp_path / "figs"
    steps = run_cli(
        *data, "--epochs", "2", "--shuffle", "--validate", "--save", str(m), "--history", str(h)
    )
    assert steps.returncode == 0, steps.stderr
    assert run_cli("evaluate", str(m), *data).returncode == 0
    Image.fromarray(mnist_data.test.images[1].reshape(28, 28)).save(tmp_path / "two.png")
    said = run_cli("predict", str(m), str(tmp_path / "two.png"))
    assert said.returncode == 0 and said.stdout.startswith(f"{tmp_path / 'two.png'}: ")
    drawn = run_cli(
        "plot",
        str(m),
        "--out",
        str(figs),
        "--history",
        str(h),
        "--explain",
        str(tmp_path / "two.png"),
        *data,
    )
    assert drawn.returncode == 0, drawn.stderr
    names = ["templates.png", "confusion.png", "most_wrong.png", "explain.png", "curves.png"]
    assert drawn.stdout.split() == [str(figs / n) for n in names]
    for name in names:
        with Image.open(figs / name) as im:
            assert im.format == "PNG" and im.width >= 600 and im.height >= 400, name
            pixels = np.asarray(im.convert("L"), np.float32)
        assert pixels.std() > 10, name  # not blank
    assert modelfile.load(m).config.epochs == 2


def test_plot_without_matplotlib_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.delitem(sys.modules, "scratchlr.reports.plots")
    monkeypatch.delattr(
        scratchlr.reports, "plots"
    )  # so that `from ..reports import plots` imports it afresh
    assert main(["plot", "m.npz", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["scratchlr: error: plot needs matplotlib: pip install 'scratchlr[plot]'"]


def test_plot_refuses_an_empty_history(
    mnist_dir: Path, tmp_path: Path, result: train.Result, capsys
) -> None:
    modelfile.save(tmp_path / "m.npz", modelfile.ModelFile(result.W, result.b, train.Config()))
    (tmp_path / "h.csv").write_text(",".join(history.COLUMNS) + "\n")
    args = [
        "--out",
        str(tmp_path / "figs"),
        "--history",
        str(tmp_path / "h.csv"),
        "--data-dir",
        str(mnist_dir),
    ]
    assert main(["plot", str(tmp_path / "m.npz"), *args]) == 1
    assert "no records" in capsys.readouterr().err


def search_table(tmp_path: Path) -> Path:
    """A grid's results file, its accuracy a function of the cell (a made-up landscape, to
    check that each cell shows its own trial)."""
    from scratchlr.search import results

    rows = []
    for lr in (0.01, 0.1, 1.0):
        for m in (0.0, 0.5, 0.9):
            acc = 0.9 + 0.01 * np.log10(lr) * -abs(m - 0.5) + lr / 100
            rows.append(
                (
                    {"learning_rate": lr, "momentum": m},
                    results.Outcome(1 - acc, acc, 430, lr + m + 0.1),
                )
            )
    out = tmp_path / "r.csv"
    results.write(out, rows, ["learning_rate", "momentum"], {"--epochs": "1"})
    return out


def test_the_search_map_shows_each_trial_in_its_cell_on_log_axes(tmp_path: Path) -> None:
    from scratchlr.search import results

    names, table = results.read_table(search_table(tmp_path))
    fig = plots.search_map(names, table)
    ax = fig.axes[0]
    assert (
        ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    )  # lr spans two decades, momentum does not
    assert ax.get_xlabel() == "learning-rate (log scale)" and ax.get_ylabel() == "momentum"
    shown = ax.collections[0].get_array().reshape(3, 3)  # rows: momentum, columns: learning rate
    for row in table:
        i = (0.0, 0.5, 0.9).index(row["momentum"])
        j = (0.01, 0.1, 1.0).index(row["learning-rate"])
        assert shown[i, j] == row["val_accuracy"]
    texts = {t.get_text() for t in ax.texts}
    assert texts == {f"{row['val_accuracy']:.4f}" for row in table}


def test_the_search_map_keeps_the_best_of_each_cell_of_a_sampled_search() -> None:
    rng = np.random.default_rng(0)
    table = [
        {
            "learning-rate": float(lr),
            "batch-size": int(b),
            "val_accuracy": float(a),
            "val_loss": 0.3,
            "steps": 10,
            "seconds": 1.0,
        }
        for lr, b, a in zip(
            np.exp(rng.uniform(np.log(0.01), np.log(2), 60)),
            rng.integers(32, 513, 60),
            rng.uniform(0.8, 0.93, 60),
        )
    ]
    fig = plots.search_map(["learning-rate", "batch-size"], table)
    shown = fig.axes[0].collections[0].get_array()
    assert shown.shape == (plots.BINS, plots.BINS) and np.nanmax(shown) == max(
        r["val_accuracy"] for r in table
    )
    assert 0 < shown.count() <= 60  # cells with no trial are masked
    assert fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log"


def test_the_front_is_the_trials_nothing_beats_on_both() -> None:
    table = [
        {"seconds": s, "val_accuracy": a}
        for s, a in [(1, 0.90), (2, 0.92), (3, 0.91), (4, 0.93), (5, 0.93), (0.5, 0.85)]
    ]
    assert [(r["seconds"], r["val_accuracy"]) for r in plots.front(table)] == [
        (0.5, 0.85),
        (1, 0.90),
        (2, 0.92),
        (4, 0.93),
    ]


def test_plot_search_writes_the_two_pictures(tmp_path: Path, capsys) -> None:
    csv = search_table(tmp_path)
    assert main(["plot", "--search", str(csv), "--out", str(tmp_path / "figs")]) == 0
    written = capsys.readouterr().out.split()
    assert written == [
        str(tmp_path / "figs" / name) for name in ("search_map.png", "search_front.png")
    ]
    for name in written:
        with Image.open(name) as im:
            assert (
                im.size[0] > 500 and len(set(np.asarray(im.convert("L")).ravel().tolist())) > 20
            )  # not blank


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "not a search's results"),
        ("learning-rate,val_loss,val_accuracy,steps,seconds\n", "no trial"),
        ("momentum,val_loss,val_accuracy,steps,seconds\n0.9,0.3,0.9,1,1\n", "nothing to map"),
    ],
)
def test_plot_search_refuses_results_it_cannot_draw(
    tmp_path: Path, capsys, content: str, words: str
) -> None:
    (tmp_path / "r.csv").write_text(content)
    assert main(["plot", "--search", str(tmp_path / "r.csv"), "--out", str(tmp_path / "figs")]) == 1
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "figs").exists()


def test_a_grid_from_zero_over_decades_and_unset_values_get_a_cell_each() -> None:
    table = [
        {
            "weight-decay": wd,
            "average": avg,
            "val_accuracy": 0.9 - wd - (avg == "") / 100,
            "val_loss": 0.3,
            "steps": 10,
            "seconds": 1.0,
        }
        for wd in (0, 1e-5, 1e-4, 1e-2)
        for avg in ("", 430)
    ]
    fig = plots.search_map(["weight-decay", "average"], table)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and [t.get_text() for t in ax.get_xticklabels()] == [
        "0",
        "1e-05",
        "0.0001",
        "0.01",
    ]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["430", "none"]  # numbers first
    assert np.isfinite(
        np.asarray(ax.collections[0].get_array(), float)
    ).all()  # every cell has its trial
