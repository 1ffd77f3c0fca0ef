"""One contender per process: ``python benchmarks/peers.py NAME DATA_DIR STEPS``.

Every contender trains the seed's model on identical data (the 55,000 training images in
file order, batches of 128 cycling as ``Dataset.repeat().batch(128)``, lr 0.1, zero init,
one forward pass per step serving loss, accuracy and gradient), then prints one JSON line:
``{"load_s", "train_s", "steps", "test_accuracy", "loss_sum"}``. Peak RSS is measured by
the parent (bench.py). Contenders whose framework is not installed exit with status 3.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS

LR = 0.1
BATCH = 128


def batches(n: int, steps: int):
    """Index arrays of the seed's batches (a tutorial gathers with them)."""
    for k in range(steps):
        yield np.arange(k * BATCH, (k + 1) * BATCH) % n


def numpy_tutorial(data: splits.Splits, steps: int) -> tuple[float, float, float]:
    """The loop a NumPy tutorial writes: whole float32 train set up front, fancy-index
    gathers, fresh temporaries everywhere, but already one forward pass per step."""
    X_all = data.train.images.astype(np.float32) / np.float32(255)
    y_all = data.train.labels
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    loss_sum = 0.0
    t0 = time.perf_counter()
    for idx in batches(len(y_all), steps):
        X = X_all[idx]
        y = y_all[idx]
        logits = X @ W + b
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss_sum += -np.log(probs[np.arange(len(y)), y]).mean()
        _acc = (probs.argmax(axis=1) == y).mean()
        dlogits = probs.copy()
        dlogits[np.arange(len(y)), y] -= 1
        dlogits /= len(y)
        W -= LR * (X.T @ dlogits)
        b -= LR * dlogits.sum(axis=0)
    train_s = time.perf_counter() - t0
    Xt = data.test.images.astype(np.float32) / np.float32(255)
    acc = float(((Xt @ W + b).argmax(axis=1) == data.test.labels).mean())
    return train_s, acc, loss_sum


def torch_loop(data: splits.Splits, steps: int, compile: bool) -> tuple[float, float, float]:
    import torch

    images = torch.from_numpy(np.array(data.train.images))  # a writable copy of the memmap
    labels = torch.from_numpy(data.train.labels)
    W = torch.zeros(784, 10, requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    opt = torch.optim.SGD([W, b], lr=LR)

    def step(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = X @ W + b
        loss = torch.nn.functional.cross_entropy(logits, y)
        acc = (logits.softmax(1).argmax(1) == y).float().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach(), acc

    if compile:
        step = torch.compile(step)
        for idx in batches(len(labels), 20):  # compile outside the timed loop
            step(images[idx].float() / 255, labels[idx])
        W.data.zero_()
        b.data.zero_()
    loss_sum = torch.zeros(())
    t0 = time.perf_counter()
    for idx in batches(len(labels), steps):
        X = images[torch.from_numpy(idx)].float() * (1 / 255)
        y = labels[torch.from_numpy(idx)]
        loss, _acc = step(X, y)
        loss_sum += loss
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        Xt = torch.from_numpy(np.array(data.test.images)).float() / 255
        acc = ((Xt @ W + b).argmax(1) == torch.from_numpy(data.test.labels)).float().mean()
    return train_s, float(acc), float(loss_sum)


def jax_jit(data: splits.Splits, steps: int) -> tuple[float, float, float]:
    """The whole step, batch gather included, under one ``jax.jit``."""
    import jax
    import jax.numpy as jnp

    images = jnp.asarray(data.train.images)
    labels = jnp.asarray(data.train.labels)
    n = len(data.train.labels)

    def loss_fn(params, X, y):
        W, b = params
        logits = X @ W + b
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, y[:, None], 1).mean(), logits

    @jax.jit
    def step(params, k):
        idx = (k * BATCH + jnp.arange(BATCH)) % n
        X = images[idx].astype(jnp.float32) * jnp.float32(1 / 255)
        y = labels[idx]
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, X, y)
        acc = (jax.nn.softmax(logits).argmax(1) == y).mean()
        return [p - LR * g for p, g in zip(params, grads)], loss, acc

    params = [jnp.zeros((784, 10)), jnp.zeros(10)]
    step(params, 0)[1].block_until_ready()  # compile outside the timed loop
    loss_sum = jnp.zeros(())
    t0 = time.perf_counter()
    for k in range(steps):
        params, loss, _acc = step(params, k)
        loss_sum += loss
    loss_sum = float(loss_sum)  # waits for the last step
    train_s = time.perf_counter() - t0
    Xt = jnp.asarray(data.test.images) / 255.0
    acc = float(((Xt @ params[0] + params[1]).argmax(1) == jnp.asarray(data.test.labels)).mean())
    return train_s, acc, loss_sum


def tf_eager(data: splits.Splits, steps: int) -> tuple[float, float, float]:
    import tensorflow as tf

    X_all = data.train.images.astype(np.float32) * np.float32(1 / 255)
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    opt = tf.keras.optimizers.SGD(LR)
    loss_sum = 0.0
    t0 = time.perf_counter()
    for idx in batches(len(data.train.labels), steps):
        X = tf.constant(X_all[idx])
        y = tf.constant(data.train.labels[idx])
        with tf.GradientTape() as tape:
            logits = tf.matmul(X, W) + b
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        _acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(tf.nn.softmax(logits), 1), y), tf.float32))
        opt.apply_gradients(zip(tape.gradient(loss, [W, b]), [W, b]))
        loss_sum += loss
    train_s = time.perf_counter() - t0
    Xt = data.test.images.astype(np.float32) / 255
    acc = float(np.mean(np.argmax(Xt @ W.numpy() + b.numpy(), 1) == data.test.labels))
    return train_s, acc, float(loss_sum)


CONTENDERS = {
    "numpy-tutorial": numpy_tutorial,
    "torch-eager": lambda d, s: torch_loop(d, s, compile=False),
    "torch-compile": lambda d, s: torch_loop(d, s, compile=True),
    "jax-jit": jax_jit,
    "tf-eager": tf_eager,
}


def main() -> int:
    name = sys.argv[1]
    data_dir = sys.argv[2]
    steps = int(sys.argv[3])
    t0 = time.perf_counter()
    data = splits.load(DATASETS["mnist"], data_dir)
    load_s = time.perf_counter() - t0
    try:
        train_s, acc, loss_sum = CONTENDERS[name](data, steps)
    except ImportError as exc:
        print(f"{name}: not installed ({exc})", file=sys.stderr)
        return 3
    result = {
        "load_s": load_s,
        "train_s": train_s,
        "steps": steps,
        "test_accuracy": acc,
        "loss_sum": float(loss_sum),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
