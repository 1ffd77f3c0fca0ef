"""The optimiser's equations: each function by hand, and 200 steps against PyTorch's SGD."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA

from scratchlr import optim, train
from scratchlr.backend import numpy_backend


def quiet(data, config: train.Config) -> train.Result:
    return train.train(data, config, numpy_backend(), emit=lambda line: None)


@pytest.fixture(scope="module")
def torch_sgd() -> dict[str, np.ndarray]:
    with np.load(DATA / "torch_sgd.npz") as f:
        return dict(f)


@pytest.mark.parametrize("step", ["fast", "reference"])
@pytest.mark.parametrize(
    "case", ["float32_momentum", "float32_nesterov", "float64_momentum", "float64_nesterov"]
)
def test_200_steps_agree_with_torch_sgd_and_step_lr(
    mnist_data, torch_sgd, case: str, step: str
) -> None:
    """torch.optim.SGD(momentum 0.9, Nesterov off/on, weight decay 1e-4 on W) + StepLR(50, 0.5),
    on the same batches: the same run to float32 rounding (PyTorch fuses theta - lr d into
    one rounding where NumPy takes two)."""
    dtype, kind = case.split("_")
    config = train.Config(
        num_steps=200,
        display_step=1,
        dtype=dtype,
        step=step,
        momentum=0.9,
        nesterov=kind == "nesterov",
        weight_decay=1e-4,
        lr_schedule="step",
        step_size=50,
        gamma=0.5,
    )
    result = quiet(mnist_data, config)
    losses = np.array([r.loss for r in result.history])
    np.testing.assert_allclose(losses, torch_sgd[f"{case}_loss"], rtol=1e-6, atol=0)
    assert np.abs(result.W - torch_sgd[f"{case}_W"]).max() <= 1e-5
    assert np.abs(result.b - torch_sgd[f"{case}_b"]).max() <= 1e-5
    assert [r.lr for r in result.history][49:51] == [0.1, 0.05]  # StepLR halves it after step 50


def test_sgd_step_by_hand() -> None:
    """One update of each kind, against the formula written out here, in float64."""
    rng = np.random.default_rng(0)
    theta, g, v = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    lr, mu, lam = 0.3, 0.9, 0.01
    new, _ = optim.sgd_step(theta, g, None, lr)
    np.testing.assert_allclose(new, theta - lr * g, rtol=1e-15)
    new, v1 = optim.sgd_step(theta, g, v, lr, momentum=mu)
    np.testing.assert_allclose(v1, mu * v + g, rtol=1e-15)
    np.testing.assert_allclose(new, theta - lr * (mu * v + g), rtol=1e-15)
    new, v1 = optim.sgd_step(theta, g, v, lr, momentum=mu, nesterov=True, weight_decay=lam)
    g_decayed = g + lam * theta
    v_expected = mu * v + g_decayed
    np.testing.assert_allclose(v1, v_expected, rtol=1e-15)
    np.testing.assert_allclose(new, theta - lr * (g_decayed + mu * v_expected), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "momentum, nesterov, decay",
    [(0, False, 0), (0, False, 1e-3), (0.9, False, 0), (0.9, True, 1e-4), (0.5, False, 0.1)],
)
def test_in_place_equals_new_arrays(
    dtype: type, momentum: float, nesterov: bool, decay: float
) -> None:
    """The fast step's in-place update makes the reference's bits, over several steps."""
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(784, 10)).astype(dtype)
    v = np.zeros_like(theta) if momentum else None
    theta_ip, v_ip = theta.copy(), None if v is None else v.copy()
    for k in range(4):
        g = rng.normal(size=theta.shape).astype(dtype)
        theta, v = optim.sgd_step(theta, g.copy(), v, 0.1 / (k + 1), momentum, nesterov, decay)
        out, v_out = optim.sgd_step(
            theta_ip, g.copy(), v_ip, 0.1 / (k + 1), momentum, nesterov, decay, in_place=True
        )
        assert out is theta_ip and v_out is v_ip
        assert theta.tobytes() == theta_ip.tobytes()
        assert v is None or v.tobytes() == v_ip.tobytes()


def test_descend_rounds_learning_rate_to_param_dtype() -> None:
    W = np.ones(4, np.float32)
    g = np.full(4, 3.0, np.float32)
    out = optim.descend(W, g, 0.1)
    assert out.dtype == np.float32
    assert np.array_equal(out, W - np.float32(0.1) * g)


def test_first_velocity_is_the_gradient() -> None:
    """From v = 0, mu v + g is g exactly: PyTorch's first step, which sets buf = g."""
    g = np.random.default_rng(2).normal(size=100).astype(np.float32)
    assert optim.momentum_buffer(np.zeros_like(g), g, 0.9).tobytes() == g.tobytes()


def test_polyak_average_is_the_mean_of_the_iterates() -> None:
    rng = np.random.default_rng(3)
    iterates = rng.normal(size=(50, 7, 3))
    mean = np.zeros((7, 3))
    for k, theta in enumerate(iterates, start=1):
        mean = optim.polyak_average(mean, theta, k)
        if k == 1:
            assert np.array_equal(mean, theta)  # from 0, the first mean is the first iterate
    np.testing.assert_allclose(mean, iterates.mean(axis=0), rtol=1e-12, atol=1e-14)


def test_l2_penalty_terms() -> None:
    W = np.array([[1.0, -2.0], [3.0, 0.5]])
    terms = optim.l2_penalty(W, 0.1)
    assert terms.shape == W.shape and terms.sum() == pytest.approx(0.05 * (1 + 4 + 9 + 0.25))


@pytest.mark.parametrize("in_place", [False, True])
def test_sgd_keeps_velocities_and_the_mean_of_the_iterates(in_place: bool) -> None:
    """A constant gradient g, momentum mu, from theta_0 = 1: v_k = g (1 - mu^k) / (1 - mu) and
    theta_k = 1 - lr sum_{j <= k} v_j, in closed form; averaging from step 3 keeps the mean of
    theta_4 .. theta_K. The second parameter, with a zero gradient, only decays, by its own
    lambda: u <- mu u + lambda w, w <- w - lr u; the first has lambda 0."""
    mu, lr, K, start, lam = 0.5, 0.1, 8, 3, 0.2
    g = np.array([1.0, -2.0, 0.5])
    sgd = optim.SGD(
        [np.ones(3), np.ones(2)], [0.0, lam], momentum=mu, average=start, in_place=in_place
    )
    iterates, w, u = [], 1.0, 0.0
    for _ in range(K):
        sgd.step([g.copy(), np.zeros(2)], lr)
        iterates.append(sgd.params[0].copy())
        u = mu * u + lam * w
        w = w - lr * u
    v = [g * (1 - mu**k) / (1 - mu) for k in range(1, K + 1)]
    np.testing.assert_allclose(sgd.velocities[0], v[-1], rtol=1e-14)
    np.testing.assert_allclose(
        iterates, [1 - lr * np.sum(v[:k], axis=0) for k in range(1, K + 1)], rtol=1e-14
    )
    np.testing.assert_allclose(sgd.params[1], [w, w], rtol=1e-14)
    assert w < 0.9  # it did decay
    assert sgd.steps == K and sgd.averaged == K - start
    np.testing.assert_allclose(sgd.final_params()[0], np.mean(iterates[start:], axis=0), rtol=1e-14)
    fresh = optim.SGD([np.ones(3)], [0.0], average=start)
    assert fresh.final_params()[0] is fresh.params[0]  # before averaging begins: the iterates


def test_schedules_by_formula() -> None:
    lr = 0.4
    assert [optim.scheduled_lr("step", lr, t, step_size=3, gamma=0.5) for t in range(7)] == [
        0.4,
        0.4,
        0.4,
        0.2,
        0.2,
        0.2,
        0.1,
    ]
    assert optim.scheduled_lr("exponential", lr, 3, gamma=0.5) == pytest.approx(0.05)
    assert optim.scheduled_lr("cosine", lr, 0, t_max=10, eta_min=0.01) == pytest.approx(lr)
    assert optim.scheduled_lr("cosine", lr, 5, t_max=10, eta_min=0.01) == pytest.approx(
        (lr + 0.01) / 2
    )
    assert optim.scheduled_lr("cosine", lr, 10, t_max=10, eta_min=0.01) == pytest.approx(0.01)
    assert optim.scheduled_lr("inverse", lr, 4, gamma=0.25) == pytest.approx(0.2)
    assert optim.scheduled_lr("constant", lr, 10**6) == lr
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        optim.scheduled_lr("linear", lr, 0)


def test_cosine_schedule_is_half_a_period() -> None:
    """T_max is half the period: down to eta_min at T_max, back up to lr at 2 T_max, as
    CosineAnnealingLR's closed form; a quarter of the way down it is at 1/2 + sqrt(2)/4."""
    lr, eta_min, t_max = 0.5, 0.05, 40
    assert optim.cosine_lr(lr, 10, t_max, eta_min) == pytest.approx(
        eta_min + (lr - eta_min) * (0.5 + 2**0.5 / 4)
    )
    assert optim.cosine_lr(lr, 60, t_max, eta_min) == pytest.approx(
        optim.cosine_lr(lr, 20, t_max, eta_min)
    )
    assert optim.cosine_lr(lr, 80, t_max, eta_min) == pytest.approx(lr)


@pytest.mark.parametrize(
    "momentum, nesterov",
    [
        (0.0, False),
        (0.5, False),
        (0.9, False),
        (0.99, False),
        (0.5, True),
        (0.9, True),
        (0.99, True),
    ],
)
def test_decay_limit_is_where_the_decay_alone_stops_contracting(
    momentum: float, nesterov: bool
) -> None:
    """Iterate the decay term alone (g = lambda theta): just under the limit it shrinks,
    just over it grows."""
    limit = optim.stable_decay_limit(momentum, nesterov)

    def size_after(a: float, steps: int = 4000) -> float:
        theta, v = np.ones(1), np.zeros(1)
        for _ in range(steps):
            theta, v = optim.sgd_step(
                theta, np.zeros(1), v if momentum else None, 1.0, momentum, nesterov, a
            )
        return float(abs(theta[0]))

    with np.errstate(over="ignore", invalid="ignore"):
        assert size_after(0.99 * limit) < 1
        assert not size_after(1.01 * limit) < 1e3  # grown past 1e3, or overflowed
