"""The adaptive members (Adam, AdamW, RMSprop, Adagrad): 200 steps against torch.optim with a
schedule and averaging, each update by hand, the fast step's bits, their settings' checks,
and the tools built on runs (a search, a model file, the history) with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from test_cli import in_process

from scratchlr import optim, train
from scratchlr.backend import numpy_backend
from scratchlr.config import Config, from_text
from scratchlr.files import modelfile
from scratchlr.optim import adagrad, adam, rmsprop

# The settings of each case of torch_optim.npz (tests/data/make_torch_optim.py), as flags.
CASES = {
    "adam": dict(optimizer="adam", learning_rate=0.01, weight_decay=1e-4),
    "adamw": dict(optimizer="adamw", learning_rate=0.01, betas=(0.8, 0.99), weight_decay=0.1),
    "rmsprop": dict(optimizer="rmsprop", learning_rate=0.001, weight_decay=1e-4),
    "rmsprop_centered": dict(
        optimizer="rmsprop",
        learning_rate=0.001,
        alpha=0.9,
        momentum=0.5,
        centered=True,
        eps=1e-6,
        weight_decay=1e-4,
    ),
    "adagrad": dict(
        optimizer="adagrad",
        learning_rate=0.1,
        lr_decay=0.01,
        initial_accumulator_value=0.1,
        weight_decay=1e-4,
    ),
}
AVERAGE_START = 100
LOSS_ULPS = 32  # the losses' relative tolerance, in units of the dtype's eps
WEIGHT_ULPS = 256  # W's and b's absolute tolerance, in eps times max |W| (torch's)


def quiet(data, config: Config) -> train.Result:
    return train.train(data, config, numpy_backend(), emit=lambda line: None)


@pytest.fixture(scope="module")
def torch_optim() -> dict[str, np.ndarray]:
    with np.load(DATA / "torch_optim.npz") as f:
        return dict(f)


def golden_config(case: str, dtype: str, implementation: str, average: int | None) -> Config:
    """The run of a case of torch_optim.npz: 200 steps, StepLR(50, 0.5), a record a step."""
    return Config(
        num_steps=200,
        display_step=1,
        dtype=dtype,
        implementation=implementation,
        lr_schedule="step",
        step_size=50,
        gamma=0.5,
        average=average,
        **CASES[case],
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_200_steps_agree_with_torch_optim(mnist_data, torch_optim, case: str, dtype: str) -> None:
    """Each member, with weight decay on W (AdamW's decoupled) and StepLR(50, 0.5), against
    torch.optim's single-tensor step on the same batches; averaged from step 100 where the
    file has AveragedModel's means. Both implementations make the same bits.

    Not bits with torch: our functions take torch's operations in its order, but torch's CPU
    kernels fuse some into one rounding (``lerp`` and ``add(alpha=)`` are fused multiply-adds,
    so are its weight decay's ``grad.add(param, alpha=wd)`` and RMSprop's momentum step), its
    vectorised ``sqrt`` is not correctly rounded (1 ulp, on AVX-512), and its matrix products
    sum in another order. Each step differs by an ulp or so; the division by sqrt(v), large
    where v is small, amplifies that over 200 steps to at most 88 ulps of max |W| (float32,
    centered RMSprop; 23 in float64). The tolerance: W and b within 256 eps max |W|, each
    loss within 32 eps relative (measured: at most 3 eps). A wrong formula (eps inside the
    root, a missing bias correction, the decay on b) is off by far more, in float64 above
    all, where 256 eps max |W| is 1e-14."""
    key = f"{case}_{dtype}"
    averaged = f"{key}_avg_W" in torch_optim
    eps = np.finfo(dtype).eps
    runs = {
        implementation: quiet(
            mnist_data,
            golden_config(case, dtype, implementation, AVERAGE_START if averaged else None),
        )
        for implementation in ("fast", "reference")
    }
    fast = runs["fast"]
    reference = runs["reference"]
    assert fast.W.tobytes() == reference.W.tobytes() and fast.b.tobytes() == reference.b.tobytes()
    losses = np.array([r.loss for r in fast.history])
    assert [r.loss for r in reference.history] == list(losses)
    np.testing.assert_allclose(losses, torch_optim[f"{key}_loss"], rtol=LOSS_ULPS * eps, atol=0)
    prefix = f"{key}_avg_" if averaged else f"{key}_"
    W = torch_optim[prefix + "W"]
    b = torch_optim[prefix + "b"]
    assert fast.W.dtype == np.dtype(dtype)
    tolerance = WEIGHT_ULPS * eps * np.abs(W).max()
    assert np.abs(fast.W - W).max() <= tolerance
    assert np.abs(fast.b - b).max() <= tolerance
    assert [r.lr for r in fast.history][49:51] == [
        CASES[case]["learning_rate"],
        CASES[case]["learning_rate"] / 2,
    ]  # StepLR halves it after step 50
    if averaged:  # the mean is what the run ends with, not the last iterate
        assert np.abs(W - torch_optim[f"{key}_W"]).max() > 100 * tolerance


def test_a_wrong_rule_is_far_outside_the_tolerance(mnist_data, torch_optim) -> None:
    """The tolerance separates: Adam with eps 1e-7 rather than 1e-8, a change of 1e-4 in
    the denominator's root where gradients are near 1e-3, lands far outside it in float64."""
    W = torch_optim["adam_float64_W"]
    tolerance = WEIGHT_ULPS * np.finfo(np.float64).eps * np.abs(W).max()
    config = dataclasses.replace(golden_config("adam", "float64", "fast", None), eps=1e-7)
    assert np.abs(quiet(mnist_data, config).W - W).max() > 100 * tolerance


def rng_arrays(seed: int, count: int, shape: tuple[int, ...] = (3, 4)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(count)]


def test_adam_update_by_hand() -> None:
    """Step k of Adam, and of AdamW, against the textbook form with m_hat and v_hat, in
    float64: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, theta - lr m_hat /
    (sqrt(v_hat) + eps), m_hat = m / (1 - b1^k), v_hat = v / (1 - b2^k)."""
    theta, g, m = rng_arrays(0, 3)
    v = np.abs(rng_arrays(1, 1)[0])
    lr = 0.01
    b1 = 0.8
    b2 = 0.95
    eps = 1e-3
    k = 3
    new, m1, v1 = adam.adam_update(theta, g, m, v, k, lr, (b1, b2), eps)
    np.testing.assert_allclose(m1, b1 * m + (1 - b1) * g, rtol=1e-14)
    np.testing.assert_allclose(v1, b2 * v + (1 - b2) * g**2, rtol=1e-14)
    m_hat = m1 / (1 - b1**k)
    v_hat = v1 / (1 - b2**k)
    np.testing.assert_allclose(new, theta - lr * m_hat / (np.sqrt(v_hat) + eps), rtol=1e-14)
    lam = 0.1
    new, _, _ = adam.adam_update(theta, g, m, v, k, lr, (b1, b2), eps, weight_decay=lam)
    expected = (1 - lr * lam) * theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(new, expected, rtol=1e-14)


def test_adams_first_step_is_lr_along_the_gradients_sign() -> None:
    """From m = v = 0 the bias correction makes m_hat = g and v_hat = g^2, so the first step
    is lr g / (|g| + eps): lr sign(g), the point of the correction (without it the step would
    be (1 - b1) / sqrt(1 - b2) lr = 3.2 lr)."""
    theta, g = rng_arrays(2, 2)
    zero = np.zeros_like(g)
    new, _, _ = adam.adam_update(theta, g, zero, zero, 1, 0.01, eps=0.0)
    np.testing.assert_allclose(new, theta - 0.01 * np.sign(g), rtol=1e-14)
    assert adam.bias_correction(0.9, 1) == pytest.approx(0.1)
    assert adam.bias_correction(0.9, 10**4) == 1


def test_lerp_is_exact_at_both_ends_either_side_of_a_half() -> None:
    start, end = rng_arrays(3, 2)
    for w in (0.0, 0.1, 0.5, 0.9, 1.0):
        np.testing.assert_allclose(adam.lerp(start, end, w), (1 - w) * start + w * end, rtol=1e-14)
    assert np.array_equal(adam.lerp(start, end, 0.0), start)
    assert np.array_equal(adam.lerp(start, end, 1.0), end)


def test_rmsprop_update_by_hand() -> None:
    """Plain, centered, and with momentum, in float64."""
    theta, g, a = rng_arrays(4, 3)
    u = rng_arrays(11, 1)[0]
    v = np.abs(rng_arrays(5, 1)[0]) + 10  # above any a^2 here: a real variance
    lr = 0.01
    alpha = 0.9
    eps = 1e-3
    mu = 0.5
    v1 = alpha * v + (1 - alpha) * g**2
    new, state = rmsprop.rmsprop_update(theta, g, {"square_avg": v}, lr, alpha, eps)
    np.testing.assert_allclose(state["square_avg"], v1, rtol=1e-14)
    np.testing.assert_allclose(new, theta - lr * g / (np.sqrt(v1) + eps), rtol=1e-14)
    a1 = alpha * a + (1 - alpha) * g
    d = np.sqrt(v1 - a1**2) + eps
    centered = {"square_avg": v, "grad_avg": a, "momentum_buffer": u}
    new, state = rmsprop.rmsprop_update(theta, g, centered, lr, alpha, eps, mu)
    np.testing.assert_allclose(state["grad_avg"], a1, rtol=1e-14)
    np.testing.assert_allclose(state["momentum_buffer"], mu * u + g / d, rtol=1e-14)
    assert centered["grad_avg"] is a  # the reference step leaves the old state be
    np.testing.assert_allclose(new, theta - lr * (mu * u + g / d), rtol=1e-14)


def test_adagrad_update_by_hand() -> None:
    """Step k with its lr decay, in float64; and the sum of squares over several steps."""
    theta, g = rng_arrays(6, 2)
    s = np.abs(rng_arrays(7, 1)[0])
    lr = 0.1
    decay = 0.5
    eps = 1e-3
    new, s1 = adagrad.adagrad_update(theta, g, s, 3, lr, decay, eps)
    np.testing.assert_allclose(s1, s + g**2, rtol=1e-14)
    lr_3 = lr / (1 + 2 * decay)
    np.testing.assert_allclose(new, theta - lr_3 * g / (np.sqrt(s1) + eps), rtol=1e-14)
    member = optim.Adagrad([np.zeros(3)], initial_accumulator_value=0.25)
    grads = [np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.0, -1.0])]
    for grad in grads:
        member.step([grad.copy()], 1.0)
    np.testing.assert_allclose(member.state[0]["sum"], 0.25 + sum(x**2 for x in grads))
    assert member.state[0]["step"] == 2


MEMBERS = {
    "adam": lambda p, ip: optim.Adam(p, (0.9, 0.999), 1e-8, ip),
    "adam_low_beta": lambda p, ip: optim.Adam(p, (0.3, 0.6), 1e-6, ip),  # lerp's other form
    "adamw": lambda p, ip: optim.AdamW(p, (0.8, 0.99), 1e-8, 0.1, ip),
    "rmsprop": lambda p, ip: optim.RMSprop(p, 0.99, 1e-8, in_place=ip),
    "rmsprop_centered_momentum": lambda p, ip: optim.RMSprop(p, 0.4, 1e-6, 0.9, True, ip),
    "adagrad": lambda p, ip: optim.Adagrad(p, 0.1, 0.5, 1e-10, ip),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("member", list(MEMBERS))
def test_in_place_equals_new_arrays(member: str, dtype: type) -> None:
    """The fast step writes the reference's bits into the parameters and the state, over
    several steps, W and b alike (W decayed, b not, by AdamW)."""
    params = [p.astype(dtype) for p in rng_arrays(8, 1, (784, 10)) + rng_arrays(9, 1, (10,))]
    readable = MEMBERS[member]([p.copy() for p in params], False)
    fast = MEMBERS[member]([p.copy() for p in params], True)
    kept = list(fast.params)
    buffers = [dict(state) for state in fast.state]
    rng = np.random.default_rng(10)
    for k in range(5):
        grads = [rng.normal(size=p.shape).astype(dtype) for p in params]
        readable.step([g.copy() for g in grads], 0.1 / (k + 1))
        fast.step([g.copy() for g in grads], 0.1 / (k + 1))
    for i in range(2):
        assert fast.params[i] is kept[i]  # written in place
        assert fast.params[i].dtype == dtype
        assert fast.params[i].tobytes() == readable.params[i].tobytes()
        for name, value in readable.state[i].items():
            assert np.asarray(fast.state[i][name]).tobytes() == np.asarray(value).tobytes(), name
            if isinstance(value, np.ndarray):
                assert fast.state[i][name] is buffers[i][name], name  # its buffer, overwritten
    assert not np.array_equal(fast.params[0], params[0])


def test_adamw_decays_w_not_b() -> None:
    """With zero gradients Adam's step is 0 (m = 0), so AdamW's iterates are its decay alone:
    W (1 - lr lambda)^k, b unchanged."""
    W = np.ones((3, 2))
    b = np.ones(2)
    member = optim.AdamW([W, b], weight_decay=0.5)
    for _ in range(3):
        member.step([np.zeros((3, 2)), np.zeros(2)], 0.1)
    np.testing.assert_allclose(member.params[0], 0.95**3, rtol=1e-15)
    assert np.array_equal(member.params[1], b)


@pytest.mark.parametrize(
    "settings",
    [
        dict(optimizer="adam", betas=(0.5, 0.9), eps=1e-6, weight_decay=1e-3),
        dict(optimizer="adamw", weight_decay=0.05, average=5),
        dict(optimizer="rmsprop", alpha=0.9, centered=True, momentum=0.9),
        dict(optimizer="adagrad", lr_decay=0.1, initial_accumulator_value=0.01, epochs=1),
    ],
)
def test_fast_and_reference_runs_are_the_same_bits(mnist_data, settings) -> None:
    runs = [
        quiet(
            mnist_data,
            Config(
                implementation=implementation,
                learning_rate=0.003,
                display_step=10,
                **({"num_steps": 30} if "epochs" not in settings else {}),
                **settings,
            ),
        )
        for implementation in ("fast", "reference")
    ]
    assert runs[0].W.tobytes() == runs[1].W.tobytes()
    assert runs[0].b.tobytes() == runs[1].b.tobytes()
    assert [r.loss for r in runs[0].history] == [r.loss for r in runs[1].history]


def test_adamws_objective_has_no_penalty(mnist_data) -> None:
    """Config.penalty is the objective's lambda: the weight decay for every member but
    adamw, whose decay is its own; so AdamW with lambda differs from Adam with it."""
    assert Config(optimizer="adamw", weight_decay=0.1).penalty == 0
    assert Config(optimizer="adam", weight_decay=0.1).penalty == 0.1
    assert Config(weight_decay=0.1).penalty == 0.1
    runs = {
        name: quiet(
            mnist_data,
            Config(optimizer=name, learning_rate=0.01, weight_decay=1.0, num_steps=20),
        )
        for name in ("adam", "adamw")
    }
    assert not np.array_equal(runs["adam"].W, runs["adamw"].W)
    no_decay = quiet(mnist_data, Config(optimizer="adamw", learning_rate=0.01, num_steps=20))
    assert np.abs(runs["adamw"].W).sum() < np.abs(no_decay.W).sum()  # decayed towards 0


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(optimizer="adam", betas=(0.9, 1.0)), "--betas must be two numbers in [0, 1)"),
        (dict(optimizer="adamw", betas=(-0.1, 0.9)), "--betas must be two numbers in [0, 1)"),
        (dict(optimizer="adam", betas=(0.9, float("nan"))), "--betas"),
        (dict(optimizer="adam", betas=(0.9,)), "--betas must be two numbers"),
        (dict(optimizer="adam", eps=0.0), "--eps must be positive, got 0.0"),
        (dict(optimizer="rmsprop", eps=-1e-8), "--eps must be positive"),
        (dict(optimizer="adagrad", eps=float("inf")), "--eps must be positive"),
        (dict(optimizer="rmsprop", alpha=1.0), "--alpha must be in [0, 1), got 1.0"),
        (dict(optimizer="rmsprop", alpha=-0.5), "--alpha must be in [0, 1)"),
        (dict(optimizer="rmsprop", momentum=1.0), "--momentum must be in [0, 1)"),
        (dict(optimizer="adagrad", lr_decay=-1.0), "--lr-decay must be zero or positive"),
        (
            dict(optimizer="adagrad", initial_accumulator_value=-0.1),
            "--initial-accumulator-value must be zero or positive",
        ),
        (
            dict(optimizer="adamw", learning_rate=1.0, weight_decay=2.0),
            "--learning-rate x --weight-decay is 2",
        ),
        (dict(optimizer="sgd", betas=(0.8, 0.999)), "--betas is not used by --optimizer sgd"),
        (dict(optimizer="sgd", eps=1e-8), "--eps is not used by --optimizer sgd"),
        (dict(optimizer="adam", momentum=0.9), "--momentum is not used by --optimizer adam"),
        (dict(optimizer="adam", alpha=0.9), "--alpha is not used by --optimizer adam"),
        (dict(optimizer="adagrad", centered=True), "--centered is not used by --optimizer"),
        (dict(optimizer="rmsprop", lr_decay=0.1), "--lr-decay is not used by --optimizer"),
        (dict(optimizer="rmsprop", nesterov=True), "--nesterov is not used by --optimizer"),
    ],
)
def test_bad_settings_are_one_line_naming_the_flag(settings, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Config(**settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_each_member_takes_its_own_settings_and_torchs_defaults() -> None:
    """eps unset is each member's torch default; betas given as a list (the command line's,
    a model file's JSON) is kept as a tuple."""
    params = [np.zeros((2, 2))]
    assert optim.Adam.from_config(params, Config(optimizer="adam"), False).eps == 1e-8
    assert optim.RMSprop.from_config(params, Config(optimizer="rmsprop"), False).eps == 1e-8
    assert optim.Adagrad.from_config(params, Config(optimizer="adagrad"), False).eps == 1e-10
    config = Config(optimizer="adam", betas=[0.8, 0.9], eps=1e-6)
    assert config.betas == (0.8, 0.9) and hash(config)
    assert optim.Adam.from_config(params, config, False).betas == (0.8, 0.9)
    assert set(optim.OPTIMIZERS) == {"sgd", "adam", "adamw", "rmsprop", "adagrad"}


def test_the_command_line_takes_the_settings(mnist_dir: Path, capsys) -> None:
    """--betas takes two numbers; the help names every member; a bad value is one line."""
    proc = in_process(
        capsys,
        "train",
        "--data-dir",
        str(mnist_dir),
        "--optimizer",
        "adam",
        "--learning-rate",
        "0.001",
        "--betas",
        "0.8",
        "0.99",
        "--eps",
        "1e-7",
        "--num-steps",
        "20",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Testset Accuracy" in proc.stdout
    proc = in_process(capsys, "train", "--help")
    for name in optim.OPTIMIZERS:
        assert f"{name}:" in " ".join(proc.stdout.split())
    proc = in_process(capsys, "train", "--optimizer", "rmsprop", "--alpha", "1.5")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--alpha must be in [0, 1)" in proc.stderr


def test_a_search_over_adam_settings_runs(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    """A grid over --betas pairs and --eps: one row per trial, the betas' cell reading back
    as the pair, and the best's command line giving --betas its two numbers."""
    out = tmp_path / "r.csv"
    proc = in_process(
        capsys,
        "search",
        "--data-dir",
        str(mnist_dir),
        "--optimizer",
        "adam",
        "--learning-rate",
        "0.001",
        "--num-steps",
        "20",
        "--betas",
        "0.9 0.999,0.5 0.9",
        "--eps",
        "1e-8,1e-3",
        "--results",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "betas,eps,val_loss,val_accuracy,steps,seconds"
    assert [r.split(",")[:2] for r in rows[1:]] == [
        ["0.9 0.999", "1e-08"],
        ["0.9 0.999", "0.001"],
        ["0.5 0.9", "1e-08"],
        ["0.5 0.9", "0.001"],
    ]
    assert len({r.split(",")[2] for r in rows[1:]}) == 4  # four different runs
    assert from_text("betas", "0.5 0.9") == (0.5, 0.9)
    assert "--betas 0.9 0.999 " in proc.stdout or "--betas 0.5 0.9 " in proc.stdout
    bad = in_process(capsys, "search", "--optimizer", "adam", "--betas", "0.1:0.9", "--trials", "2")
    assert bad.returncode == 2 and "--betas: a range needs a number flag" in bad.stderr


def test_a_model_file_with_adam_settings_loads_and_evaluates(
    mnist_data, mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    """The config's betas go to JSON as a list and come back as the tuple; the model
    evaluates to the accuracy it was saved with; the history has a record per display
    step and the last."""
    config = Config(
        optimizer="adamw",
        learning_rate=0.003,
        betas=(0.85, 0.99),
        eps=1e-7,
        weight_decay=0.01,
        num_steps=50,
        display_step=20,
    )
    result = quiet(mnist_data, config)
    assert [r.step for r in result.history] == [1, 20, 40, 50]
    assert all(np.isfinite(r.loss) for r in result.history)
    assert result.history[-1].loss < result.history[0].loss
    path = tmp_path / "adamw.npz"
    modelfile.save(
        path, modelfile.ModelFile(result.W, result.b, config, None, result.test_accuracy)
    )
    loaded = modelfile.load(path)
    assert loaded.config == config and loaded.config.betas == (0.85, 0.99)
    proc = in_process(capsys, "evaluate", str(path), "--data-dir", str(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"{result.test_accuracy:.4f}" in proc.stdout
