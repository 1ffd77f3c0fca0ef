"""Training past the seed: epochs, shuffling, the optimiser's options, validation, early
stopping, history, and every one of them with either implementation, bit for bit."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import scores_by_hand

from scratchlr import train
from scratchlr.backend import numpy_backend
from scratchlr.dataset import batches, splits
from scratchlr.dataset.records import DATASETS
from scratchlr.files import history


def quiet(data: splits.Splits, config: train.Config, **kwargs) -> train.Result:
    return train.train(data, config, numpy_backend(), emit=lambda line: None, **kwargs)


@pytest.fixture(scope="module")
def small(mnist_dir: Path) -> splits.Splits:
    """2,000 training images (and 1,000 for validation): epochs of 16 batches of 128."""
    data = splits.load(DATASETS["mnist"], str(mnist_dir), validation_size=1000)
    train_ = splits.Split(data.train.images[:2000], data.train.labels[:2000])
    return dataclasses.replace(data, train=train_)


OPTIONS = {
    "epochs-shuffle": dict(epochs=2, shuffle=True, seed=3),
    "momentum": dict(num_steps=60, momentum=0.9),
    "nesterov-decay": dict(num_steps=60, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "step-lr": dict(num_steps=60, lr_schedule="step", step_size=20, gamma=0.5),
    "exponential": dict(num_steps=60, lr_schedule="exponential", gamma=0.97),
    "cosine": dict(epochs=3, lr_schedule="cosine", eta_min=0.01, shuffle=True),
    "inverse": dict(num_steps=60, lr_schedule="inverse", gamma=0.1),
    "average": dict(epochs=3, shuffle=True, momentum=0.9, learning_rate=0.4, average=16),
    "validate-early-stop": dict(
        num_steps=200, display_step=10, learning_rate=2.0, early_stopping=2
    ),
    "shuffle-repeat-wrap": dict(num_steps=40, batch_size=300, shuffle=True),
    "float64-all": dict(
        epochs=2,
        dtype="float64",
        shuffle=True,
        momentum=0.5,
        weight_decay=1e-2,
        lr_schedule="cosine",
        average=0,
        validate=True,
    ),
}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_every_option_is_bit_identical_with_either_step(
    small: splits.Splits, options: dict
) -> None:
    options = {"display_step": 7, **options}
    fast = quiet(small, train.Config(implementation="fast", **options))
    ref = quiet(small, train.Config(implementation="reference", **options))
    assert fast.W.tobytes() == ref.W.tobytes() and fast.b.tobytes() == ref.b.tobytes()
    assert fast.lines == ref.lines and fast.steps == ref.steps
    strip = [dataclasses.replace(r, seconds=0.0) for r in fast.history]
    assert strip == [dataclasses.replace(r, seconds=0.0) for r in ref.history]
    assert fast.W.dtype == np.dtype(options.get("dtype", "float32"))


def test_epochs_run_whole_passes_with_a_partial_last_batch(small: splits.Splits) -> None:
    result = quiet(small, train.Config(epochs=3, batch_size=300, display_step=5, validate=True))
    assert result.steps == 3 * 7  # 2000 = 6 x 300 + 200
    assert [r.step for r in result.history] == [
        1,
        5,
        7,
        10,
        14,
        15,
        20,
        21,
    ]  # display steps and epochs' ends
    validated = [r for r in result.history if r.val_accuracy is not None]
    assert [(r.step, r.epoch) for r in validated] == [
        (7, 1.0),
        (14, 2.0),
        (21, 3.0),
    ]  # once an epoch
    assert [line.split()[2] for line in result.lines if line.startswith("Validation")] == [
        "1",
        "2",
        "3",
    ]
    steps = [int(line.split()[1]) for line in result.lines if line.startswith("Step")]
    assert steps == [1, 5, 10, 15, 20]


def test_history_counts_epochs_of_either_batching(small: splits.Splits) -> None:
    repeat = quiet(small, train.Config(num_steps=20, batch_size=300, display_step=10)).history
    assert [r.epoch for r in repeat] == [0.15, 1.5, 3.0]  # 300, 3000, 6000 of 2000 examples
    epoch = quiet(
        small, train.Config(num_steps=14, batch_size=300, display_step=7, batching="epoch")
    ).history
    assert [r.epoch for r in epoch] == [
        round(1 / 7, 4),
        1.0,
        2.0,
    ]  # 7 batches a pass, the last partial


def test_history_holds_the_means_since_the_last_record_and_the_last_step(
    small: splits.Splits,
) -> None:
    """Records at step 1, each display step and the last step; each holds the mean of the
    batches since the one before (unlike the seed's printed average, which divides the
    first interval's 99 batches by 100)."""
    per_step = [r.loss for r in quiet(small, train.Config(num_steps=25, display_step=1)).history]
    result = quiet(small, train.Config(num_steps=25, display_step=10, validate=True))
    assert [r.step for r in result.history] == [1, 10, 20, 25]
    assert sum(line.startswith("Validation") for line in result.lines) == 4
    for record, (lo, hi) in zip(result.history, [(0, 1), (1, 10), (10, 20), (20, 25)]):
        assert record.loss == pytest.approx(np.mean(per_step[lo:hi]), rel=1e-6)
    loss, accuracy = scores_by_hand(
        result.W, result.b, small.validation.images, small.validation.labels
    )
    assert result.history[-1].val_accuracy == pytest.approx(
        accuracy, abs=1e-3
    )  # of 1,000: one tie at most
    assert result.history[-1].val_loss == pytest.approx(loss, rel=1e-5)


def test_early_stopping_never_drops_the_steps_after_the_last_display(small: splits.Splits) -> None:
    """50 steps, displayed every 100: the run is judged at step 1 and at step 50, and keeps
    step 50's parameters, which are better."""
    stopped = quiet(small, train.Config(num_steps=50, display_step=100, early_stopping=3))
    plain = quiet(small, train.Config(num_steps=50, display_step=100))
    assert [r.step for r in stopped.history] == [1, 50]
    assert np.array_equal(stopped.W, plain.W)


def test_epoch_history_holds_the_means_since_the_record_before(small: splits.Splits) -> None:
    """With epochs (16 batches each) and a display every 10 steps: records at 1, 10, 16, 20,
    30 and 32, each the mean of the batches since the one before."""
    per_step = quiet(small, train.Config(num_steps=32, batching="epoch", display_step=1)).history
    per_epoch = quiet(small, train.Config(epochs=2, display_step=10)).history
    assert [r.step for r in per_epoch] == [1, 10, 16, 20, 30, 32]
    for record, (lo, hi) in zip(
        per_epoch, [(0, 1), (1, 10), (10, 16), (16, 20), (20, 30), (30, 32)]
    ):
        assert record.loss == pytest.approx(np.mean([r.loss for r in per_step[lo:hi]]), rel=1e-6)


def test_shuffled_batches_are_a_fresh_permutation_each_epoch() -> None:
    n = 10
    B = 4
    images = np.arange(n, dtype=np.uint8)[:, None].repeat(3, axis=1)
    labels = np.arange(n)
    for batching, steps in (("epoch", 9), ("repeat", 10)):
        rng = np.random.default_rng(0)
        got = list(
            batches.shuffled_batches(
                images, labels, batches.batch_ranges(n, B, steps, batching), rng
            )
        )
        seen = np.concatenate([y for _, y, _ in got])
        assert all(
            x.dtype == np.uint8 and np.array_equal(x[:, 0], y) for x, y, _ in got
        )  # rows gathered in uint8
        assert all(r == [(0, len(y))] for _, y, r in got)
        epochs = [seen[k : k + n] for k in range(0, 3 * n, n)]
        assert all(sorted(e) == list(range(n)) for e in epochs)  # each epoch sees every row once
        assert not np.array_equal(epochs[0], epochs[1])  # in a fresh order
        expected = np.random.default_rng(0)
        assert np.array_equal(epochs[0], expected.permutation(n)) and np.array_equal(
            epochs[1], expected.permutation(n)
        )


def test_the_same_seed_gives_the_same_run(small: splits.Splits) -> None:
    a, b, c = (quiet(small, train.Config(epochs=1, shuffle=True, seed=s)) for s in (5, 5, 6))
    assert a.lines == b.lines and np.array_equal(a.W, b.W)
    assert a.lines != c.lines and not np.array_equal(a.W, c.W)
    plain = quiet(small, train.Config(epochs=1))
    assert not np.array_equal(a.W, plain.W)


def test_validation_lines_and_values(small: splits.Splits) -> None:
    result = quiet(small, train.Config(num_steps=30, display_step=10, validate=True))
    shown = [line for line in result.lines if line.startswith("Validation")]
    assert [line.split()[2] for line in shown] == ["0001", "0010", "0020", "0030"]
    assert [r.step for r in result.history] == [1, 10, 20, 30]
    last = result.history[-1]
    loss, acc = scores_by_hand(result.W, result.b, small.validation.images, small.validation.labels)
    assert last.val_loss == pytest.approx(loss, rel=1e-5) and last.val_accuracy == pytest.approx(
        acc, abs=1e-3
    )
    assert (
        shown[-1]
        == f"Validation: step 0030  loss= {last.val_loss:.9f}  accuracy= {last.val_accuracy:.4f}"
    )
    assert 0 < loss < 3 and 0 < acc <= 1


def test_early_stopping_keeps_the_best_parameters(small: splits.Splits) -> None:
    config = train.Config(num_steps=400, display_step=5, learning_rate=5.0, early_stopping=3)
    result = quiet(small, config)
    accs = [r.val_accuracy for r in result.history]
    best = int(np.argmax(accs))  # the first best
    assert len(accs) - 1 - best == 3  # stopped after 3 evaluations without a better one
    assert result.steps == result.history[-1].step < 400
    assert result.lines[-2].startswith("Early stopping")
    # the parameters kept are those of the best evaluation: a run that ends there has them
    shorter = quiet(
        small,
        dataclasses.replace(
            config, num_steps=result.history[best].step, early_stopping=None, validate=False
        ),
    )
    assert np.array_equal(result.W, shorter.W) and np.array_equal(result.b, shorter.b)


def test_early_stopping_with_averaging_keeps_the_best_average(small: splits.Splits) -> None:
    """With both, each validation judges the running mean, and the mean at the best one is
    kept: a run that ends at that step, averaging alike, ends with the same parameters."""
    config = train.Config(
        num_steps=400,
        display_step=10,
        learning_rate=3.0,
        momentum=0.9,
        average=20,
        early_stopping=2,
    )
    result = quiet(small, config)
    accs = [r.val_accuracy for r in result.history]
    best = result.history[int(np.argmax(accs))]
    assert result.steps < 400 and result.steps - best.step == 2 * 10 and best.step > 20
    shorter = quiet(small, dataclasses.replace(config, num_steps=best.step, early_stopping=None))
    assert np.array_equal(result.W, shorter.W) and np.array_equal(result.b, shorter.b)
    last_iterate = quiet(
        small, dataclasses.replace(config, num_steps=best.step, early_stopping=None, average=None)
    )
    assert not np.array_equal(
        result.W, last_iterate.W
    )  # what was kept is the mean, not the iterate


def test_averaging_returns_the_mean_of_the_iterates(small: splits.Splits) -> None:
    config = train.Config(num_steps=12, momentum=0.5, display_step=100)
    averaged = quiet(small, dataclasses.replace(config, average=8))
    iterates = [quiet(small, dataclasses.replace(config, num_steps=t)).W for t in range(9, 13)]
    np.testing.assert_allclose(averaged.W, np.mean(iterates, axis=0), rtol=1e-5, atol=1e-7)
    last = quiet(small, config)
    assert averaged.test_accuracy == pytest.approx(
        scores_by_hand(averaged.W, averaged.b, small.test.images, small.test.labels)[1], abs=2e-4
    )
    assert not np.array_equal(averaged.W, last.W)


COMBINATIONS = [
    dict(),
    dict(momentum=0.99),
    dict(momentum=0.99, nesterov=True),
    dict(weight_decay=1e-3),  # lr x decay = 1 < 2
    dict(momentum=0.9, weight_decay=1e-3),
    dict(momentum=0.9, nesterov=True, weight_decay=1.3e-3),  # just under 2 (1 + mu) / (1 + 2 mu)
    dict(lr_schedule="cosine", average=10, shuffle=True, momentum=0.9),
    dict(lr_schedule="step", step_size=5, gamma=1.0, momentum=0.95),
    dict(lr_schedule="inverse", gamma=0.01, momentum=0.5, weight_decay=1e-4),
    dict(dtype="float64", momentum=0.99, nesterov=True),
]


@pytest.mark.parametrize(
    "options", COMBINATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "sgd"
)
def test_no_nan_or_inf_at_learning_rate_1e3(small: splits.Splits, options: dict) -> None:
    result = quiet(
        small, train.Config(learning_rate=1e3, epochs=4, display_step=8, validate=True, **options)
    )
    assert np.isfinite(result.W).all() and np.isfinite(result.b).all()
    assert sum(r.val_loss is not None for r in result.history) == 4  # one validation an epoch
    for r in result.history:
        measured = [v for v in (r.loss, r.accuracy, r.val_loss, r.val_accuracy) if v is not None]
        assert np.isfinite(measured).all(), r
    assert not any(word in line for line in result.lines for word in ("nan", "inf"))


def test_history_csv_round_trip(small: splits.Splits, tmp_path: Path) -> None:
    records = quiet(small, train.Config(num_steps=20, display_step=5, validate=True)).history
    records += quiet(
        small, train.Config(num_steps=10, display_step=5)
    ).history  # no validation: empty cells
    path = tmp_path / "h.csv"
    history.write_csv(path, records)
    text = path.read_text().splitlines()
    assert text[0] == "step,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"
    assert text[-1].split(",")[4:6] == ["", ""]
    back = history.read_csv(path)
    assert [r.step for r in back] == [r.step for r in records]
    for a, b in zip(back, records):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            x = getattr(a, name)
            y = getattr(b, name)
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9)
    assert not list(tmp_path.glob(".*part"))  # written atomically: no temporary left


@pytest.mark.parametrize(
    "text, words",
    [
        ("step,loss\n1,2\n", "not a scratchlr history"),
        ("", "not a scratchlr history"),
        (",".join(history.COLUMNS) + "\n1,x,2,3,,,0.1,0\n", "line 2"),
    ],
)
def test_history_reader_names_a_bad_file(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=words):
        history.read_csv(path)


class Bar:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.closed = False

    def update(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        self.closed = True


def test_progress_bar_is_moved_and_closed(small: splits.Splits) -> None:
    bars = []
    quiet(
        small,
        train.Config(num_steps=250),
        progress=lambda total: bars.append(Bar(total)) or bars[-1],
    )
    (bar,) = bars
    assert bar.total == 250 and bar.closed and 240 <= bar.done <= 250


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(epochs=2, num_steps=5), "alternatives"),
        (dict(epochs=2, batching="repeat"), "'epoch'"),
        (dict(momentum=1.0), "--momentum"),
        (dict(momentum=-0.1), "--momentum"),
        (dict(nesterov=True), "--nesterov needs --momentum"),
        (dict(weight_decay=-1e-4), "--weight-decay"),
        (dict(weight_decay=float("nan")), "--weight-decay"),
        (dict(learning_rate=1e3, weight_decay=0.01), "diverge"),
        (dict(learning_rate=1e3, weight_decay=1.4e-3, momentum=0.9, nesterov=True), "diverge"),
        (dict(lr_schedule="linear"), "--lr-schedule"),
        (dict(lr_schedule="step"), "--step-size"),
        (dict(lr_schedule="exponential"), "--gamma"),
        (dict(lr_schedule="inverse"), "--gamma"),
        (dict(gamma=0.5), "not used by --lr-schedule constant"),
        (dict(lr_schedule="cosine", step_size=3), "not used by --lr-schedule cosine"),
        (dict(lr_schedule="exponential", gamma=1.5), "--gamma"),
        (dict(lr_schedule="step", step_size=0), "--step-size"),
        (dict(lr_schedule="cosine", eta_min=0.5), "--eta-min"),
        (dict(lr_schedule="cosine", t_max=-1), "--t-max"),
        (dict(average=-1), "--average"),
        (dict(early_stopping=0), "--early-stopping"),
        (dict(epochs=0), "--epochs"),
        (dict(seed=-1, shuffle=True), "--seed"),
        (dict(seed=3), "--seed is the shuffling's: it needs --shuffle"),
        (
            dict(lr_schedule="inverse", gamma=0.0),
            "--gamma must be positive for --lr-schedule inverse",
        ),
        (
            dict(lr_schedule="step", step_size=5, gamma=0.0),
            "--gamma must be in (0, 1] for --lr-schedule step",
        ),
        (dict(lr_schedule="cosine", eta_min=-0.01), "--eta-min must be in [0, --learning-rate]"),
        (dict(lr_schedule="cosine", eta_min=float("nan")), "--eta-min"),
        (dict(dtype="float32", learning_rate=1e39), "overflows float32"),
        (dict(batch_size=0), "--batch-size must be positive"),
    ],
)
def test_config_refuses_bad_options(options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        train.Config(**options)


def test_checks_against_the_run_and_the_split() -> None:
    """The run's length comes from MNIST's 60,000 training images less the validation ones."""
    with pytest.raises(ValueError, match="--average 430: the run has only 430 steps"):
        train.Config(epochs=1, average=430)  # 55,000 / 128, rounded up
    train.Config(epochs=1, average=429)
    with pytest.raises(ValueError, match="--average 469: the run has only 469 steps"):
        train.Config(epochs=1, average=469, validation_size=0)
    with pytest.raises(ValueError, match="--average 1000: the run has only 1000 steps"):
        train.Config(average=1000)
    for flags in (dict(validate=True), dict(early_stopping=3)):
        with pytest.raises(ValueError, match="--validation-size above 0"):
            train.Config(validation_size=0, **flags)
    for size in (-1, 60000):
        with pytest.raises(ValueError, match=r"--validation-size must be in \[0, 60000\)"):
            train.Config(validation_size=size)


def test_train_checks_the_config_against_the_data_it_is_given(small: splits.Splits) -> None:
    """A config checked against MNIST's split may not suit a smaller set: train() says so."""
    with pytest.raises(ValueError, match="--average 16: the run has only 16 steps"):
        quiet(small, train.Config(epochs=1, average=16))  # 2,000 images: 16 batches, not 430
    no_validation = dataclasses.replace(
        small, validation=splits.Split(small.validation.images[:0], small.validation.labels[:0])
    )
    with pytest.raises(ValueError, match="--validation-size above 0"):
        quiet(no_validation, train.Config(num_steps=5, validate=True))


def test_a_config_keeps_what_it_was_given() -> None:
    """Nothing is written into the fields: what the run uses is derived, so a copy with one
    change is a valid config, and two configs that were given alike are equal."""
    seed = train.Config()
    assert (seed.num_steps, seed.batching, seed.validate) == (None, None, False)
    assert (seed.total_steps(55000), seed.batches, seed.validates) == (1000, "repeat", False)
    three = dataclasses.replace(seed, epochs=3)
    assert (three.num_steps, three.batches, three.total_steps(55000)) == (None, "epoch", 3 * 430)
    stopping = dataclasses.replace(seed, early_stopping=2)
    assert (
        stopping.validates and not stopping.validate and stopping == train.Config(early_stopping=2)
    )
    with pytest.raises(ValueError, match="alternatives"):
        dataclasses.replace(three, num_steps=5)  # replace checks as construction does


def test_a_stop_ends_the_run_as_at_its_end(small: splits.Splits) -> None:
    """stop() saying True after step 25 of 48: that step is recorded and validated, the kept
    parameters are the average so far (those of a 25-step run), and the test line follows."""
    asked = []
    config = train.Config(epochs=3, display_step=10, validate=True, average=5)
    result = quiet(small, config, stop=lambda: asked.append(1) or len(asked) == 25)
    assert result.steps == 25 and len(asked) == 25
    assert [r.step for r in result.history] == [1, 10, 16, 20, 25]
    assert result.history[-1].val_accuracy is not None and result.lines[-1].startswith(
        "Testset Accuracy: "
    )
    shorter = quiet(small, train.Config(num_steps=25, batching="epoch", display_step=10, average=5))
    assert np.array_equal(result.W, shorter.W) and np.array_equal(result.b, shorter.b)


@pytest.mark.parametrize("flag", ["--implementation", "--step"])
def test_the_old_step_flag_still_picks_the_implementation(flag: str) -> None:
    """``--step`` was the flag's name before ``--implementation``: existing commands still run."""
    from scratchlr.cli.args import config_from
    from scratchlr.cli.main import parser

    _, commands = parser()
    args = commands["train"].parse_args([flag, "reference"])
    assert config_from(args).implementation == "reference"
    assert config_from(commands["train"].parse_args([])).implementation == "fast"
