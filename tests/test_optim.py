"""The optimisers: each function by hand, 200 steps against PyTorch's SGD, averaging around any
member, and a second member made in a few lines and trained through train()."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA

from scratchlr import objective, optim, train
from scratchlr.backend import numpy_backend
from scratchlr.gradients import reference_gradients
from scratchlr.optim import schedules, sgd
from scratchlr.optim.averaging import Averaged, polyak_average


def quiet(data, config: train.Config) -> train.Result:
    return train.train(data, config, numpy_backend(), emit=lambda line: None)


@pytest.fixture(scope="module")
def torch_sgd() -> dict[str, np.ndarray]:
    with np.load(DATA / "torch_sgd.npz") as f:
        return dict(f)


@pytest.mark.parametrize("implementation", ["fast", "reference"])
@pytest.mark.parametrize(
    "case", ["float32_momentum", "float32_nesterov", "float64_momentum", "float64_nesterov"]
)
def test_200_steps_agree_with_torch_sgd_and_step_lr(
    mnist_data, torch_sgd, case: str, implementation: str
) -> None:
    """torch.optim.SGD(momentum 0.9, Nesterov off/on, weight decay 1e-4 on W) + StepLR(50, 0.5),
    on the same batches: the same run to float32 rounding (PyTorch fuses theta - lr d into
    one rounding where NumPy takes two)."""
    dtype, kind = case.split("_")
    config = train.Config(
        num_steps=200,
        display_step=1,
        dtype=dtype,
        implementation=implementation,
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


def test_sgd_update_by_hand() -> None:
    """One update of each kind, against the formula written out here, in float64; with weight
    decay, the objective's gradient g + lambda theta goes in, as torch.optim.SGD adds it."""
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 4))
    g = rng.normal(size=(3, 4))
    v = rng.normal(size=(3, 4))
    lr = 0.3
    mu = 0.9
    lam = 0.01
    new, _ = sgd.sgd_update(theta, g, None, lr)
    np.testing.assert_allclose(new, theta - lr * g, rtol=1e-15)
    new, v1 = sgd.sgd_update(theta, g, v, lr, momentum=mu)
    np.testing.assert_allclose(v1, mu * v + g, rtol=1e-15)
    np.testing.assert_allclose(new, theta - lr * (mu * v + g), rtol=1e-15)
    g_decayed = objective.decayed(g, theta, lam)
    np.testing.assert_allclose(g_decayed, g + lam * theta, rtol=1e-15)
    new, v1 = sgd.sgd_update(theta, g_decayed, v, lr, momentum=mu, nesterov=True)
    v_expected = mu * v + g_decayed
    np.testing.assert_allclose(v1, v_expected, rtol=1e-15)
    np.testing.assert_allclose(new, theta - lr * (g_decayed + mu * v_expected), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "momentum, nesterov", [(0, False), (0.9, False), (0.9, True), (0.5, False)]
)
def test_in_place_equals_new_arrays(dtype: type, momentum: float, nesterov: bool) -> None:
    """The fast step's in-place update makes the reference's bits, over several steps."""
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(784, 10)).astype(dtype)
    v = np.zeros_like(theta) if momentum else None
    theta_ip = theta.copy()
    v_ip = None if v is None else v.copy()
    for k in range(4):
        g = rng.normal(size=theta.shape).astype(dtype)
        lr = 0.1 / (k + 1)
        theta, v = sgd.sgd_update(theta, g.copy(), v, lr, momentum, nesterov)
        out, v_out = sgd.sgd_update(theta_ip, g.copy(), v_ip, lr, momentum, nesterov, True)
        assert out is theta_ip and v_out is v_ip
        assert theta.tobytes() == theta_ip.tobytes()
        assert v is None or v.tobytes() == v_ip.tobytes()


def test_descend_rounds_learning_rate_to_param_dtype() -> None:
    W = np.ones(4, np.float32)
    g = np.full(4, 3.0, np.float32)
    out = sgd.descend(W, g, 0.1)
    assert out.dtype == np.float32
    assert np.array_equal(out, W - np.float32(0.1) * g)


def test_first_velocity_is_the_gradient() -> None:
    """From v = 0, mu v + g is g exactly: PyTorch's first step, which sets buf = g."""
    g = np.random.default_rng(2).normal(size=100).astype(np.float32)
    assert sgd.momentum_buffer(np.zeros_like(g), g, 0.9).tobytes() == g.tobytes()


def test_polyak_average_is_the_mean_of_the_iterates() -> None:
    rng = np.random.default_rng(3)
    iterates = rng.normal(size=(50, 7, 3))
    mean = np.zeros((7, 3))
    for k, theta in enumerate(iterates, start=1):
        mean = polyak_average(mean, theta, k)
        if k == 1:
            assert np.array_equal(mean, theta)  # from 0, the first mean is the first iterate
    np.testing.assert_allclose(mean, iterates.mean(axis=0), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("in_place", [False, True])
def test_sgd_keeps_velocities_and_averaging_keeps_the_mean(in_place: bool) -> None:
    """A constant gradient g, momentum mu, from theta_0 = 1: v_k = g (1 - mu^k) / (1 - mu) and
    theta_k = 1 - lr sum_{j <= k} v_j, in closed form; averaging from step 3 keeps the mean of
    theta_4 .. theta_K."""
    mu = 0.5
    lr = 0.1
    K = 8
    start = 3
    g = np.array([1.0, -2.0, 0.5])
    averaged = Averaged(optim.SGD([np.ones(3)], momentum=mu, in_place=in_place), start)
    iterates = []
    for _ in range(K):
        averaged.step([g.copy()], lr)
        iterates.append(averaged.params[0].copy())
    v = [g * (1 - mu**k) / (1 - mu) for k in range(1, K + 1)]
    np.testing.assert_allclose(averaged.optimizer.state[0]["velocity"], v[-1], rtol=1e-14)
    expected = [1 - lr * np.sum(v[:k], axis=0) for k in range(1, K + 1)]
    np.testing.assert_allclose(iterates, expected, rtol=1e-14)
    assert averaged.steps == K and averaged.averaged == K - start
    mean = np.mean(iterates[start:], axis=0)
    np.testing.assert_allclose(averaged.final_params()[0], mean, rtol=1e-14)
    fresh = Averaged(optim.SGD([np.ones(3)]), start)
    assert fresh.final_params()[0] is fresh.params[0]  # before averaging begins: the iterates


class SignDescent(optim.Optimizer):
    """A second member in a few lines: theta <- theta - lr sign(g) (signSGD)."""

    def step(self, grads: list[np.ndarray], learning_rate: float) -> None:
        for i, g in enumerate(grads):
            self.params[i] = self.params[i] - learning_rate * np.sign(g)


def test_a_second_member_trains_through_train_with_averaging(
    monkeypatch: pytest.MonkeyPatch, mnist_data
) -> None:
    """A member registered by name is picked by the config and trained by train(), with either
    implementation, averaged; the run does what the member's rule says, step by step."""
    monkeypatch.setitem(optim.OPTIMIZERS, "signsgd", SignDescent)
    runs = {}
    for implementation in ("fast", "reference"):
        config = train.Config(
            optimizer="signsgd",
            implementation=implementation,
            learning_rate=1e-3,
            num_steps=30,
            average=10,
            display_step=10,
        )
        runs[implementation] = quiet(mnist_data, config)
    fast = runs["fast"]
    assert np.array_equal(fast.W, runs["reference"].W)
    # by hand: the same rule on the same batches, then the running mean of the iterates after
    # step 10, bit for bit
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    mean_W = np.zeros_like(W)
    mean_b = np.zeros_like(b)
    images = mnist_data.train.images
    labels = mnist_data.train.labels
    for t in range(1, 31):
        ranges = [(128 * (t - 1), 128 * t)]
        batch = reference_gradients(images, labels, ranges, W, b)
        W = W - 1e-3 * np.sign(batch.grad_W)
        b = b - 1e-3 * np.sign(batch.grad_b)
        if t > 10:
            mean_W = polyak_average(mean_W, W, t - 10)
            mean_b = polyak_average(mean_b, b, t - 10)
    assert np.array_equal(fast.W, mean_W) and np.array_equal(fast.b, mean_b)
    assert not np.array_equal(mean_W, W)  # the run ends with the mean, not the last iterate
    assert fast.test_accuracy > 0.7  # it learns
    with pytest.raises(ValueError, match="--momentum is not used by --optimizer signsgd"):
        train.Config(optimizer="signsgd", momentum=0.9)


def test_an_unknown_optimizer_is_one_line() -> None:
    names = "sgd, adam, adamw, rmsprop, adagrad"
    with pytest.raises(ValueError, match=f"--optimizer must be one of {names}, got 'lion'"):
        train.Config(optimizer="lion")


def test_schedules_by_formula() -> None:
    lr = 0.4
    assert [schedules.scheduled_lr("step", lr, t, step_size=3, gamma=0.5) for t in range(7)] == [
        0.4,
        0.4,
        0.4,
        0.2,
        0.2,
        0.2,
        0.1,
    ]
    assert schedules.scheduled_lr("exponential", lr, 3, gamma=0.5) == pytest.approx(0.05)
    assert schedules.scheduled_lr("cosine", lr, 0, t_max=10, eta_min=0.01) == pytest.approx(lr)
    assert schedules.scheduled_lr("cosine", lr, 5, t_max=10, eta_min=0.01) == pytest.approx(
        (lr + 0.01) / 2
    )
    assert schedules.scheduled_lr("cosine", lr, 10, t_max=10, eta_min=0.01) == pytest.approx(0.01)
    assert schedules.scheduled_lr("inverse", lr, 4, gamma=0.25) == pytest.approx(0.2)
    assert schedules.scheduled_lr("constant", lr, 10**6) == lr
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        schedules.scheduled_lr("linear", lr, 0)


def test_cosine_schedule_is_half_a_period() -> None:
    """T_max is half the period: down to eta_min at T_max, back up to lr at 2 T_max, as
    CosineAnnealingLR's closed form; a quarter of the way down it is at 1/2 + sqrt(2)/4."""
    lr = 0.5
    eta_min = 0.05
    t_max = 40
    assert schedules.cosine_lr(lr, 10, t_max, eta_min) == pytest.approx(
        eta_min + (lr - eta_min) * (0.5 + 2**0.5 / 4)
    )
    assert schedules.cosine_lr(lr, 60, t_max, eta_min) == pytest.approx(
        schedules.cosine_lr(lr, 20, t_max, eta_min)
    )
    assert schedules.cosine_lr(lr, 80, t_max, eta_min) == pytest.approx(lr)


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
    limit = sgd.stable_decay_limit(momentum, nesterov)

    def size_after(a: float, steps: int = 4000) -> float:
        theta = np.ones(1)
        v = np.zeros(1) if momentum else None
        for _ in range(steps):
            g = objective.decayed(np.zeros(1), theta, a)  # the penalty's gradient alone
            theta, v = sgd.sgd_update(theta, g, v, 1.0, momentum, nesterov)
        return float(abs(theta[0]))

    with np.errstate(over="ignore", invalid="ignore"):
        assert size_after(0.99 * limit) < 1
        assert not size_after(1.01 * limit) < 1e3  # grown past 1e3, or overflowed
