"""The demo page's runs: ``train(watch=...)``, the runs' registry, and its HTTP API on a real
server with real MNIST."""

from __future__ import annotations

import numpy as np

from scratchlr import train
from scratchlr.backend import numpy_backend


def test_a_watch_that_says_true_at_step_k_ends_the_run_there(mnist_data) -> None:
    config = train.Config(num_steps=50, display_step=10)
    seen = []

    def watch(t, lr, params, record) -> bool:
        seen.append((t, lr, record.step if record else None, params[0].shape))
        return t == 23

    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None, watch=watch)
    assert [s[0] for s in seen] == list(range(1, 24))
    assert [s[2] for s in seen if s[2]] == [1, 10, 20]
    assert seen[0][1] == 0.1 and seen[0][3] == (784, 10)
    assert result.steps == 23 and result.interrupted
    short = train.train(mnist_data, train.Config(num_steps=23), numpy_backend(), emit=len)
    assert np.array_equal(result.W, short.W) and np.array_equal(result.b, short.b)


def test_no_watch_and_a_watch_that_never_stops_change_nothing(mnist_data, golden_lines) -> None:
    config = train.Config()
    plain = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    watched = train.train(
        mnist_data, config, numpy_backend(), emit=lambda line: None, watch=lambda *a: False
    )
    assert plain.lines == watched.lines and plain.lines[-1] == "Testset Accuracy: 0.9079"
    assert np.array_equal(plain.W, watched.W) and np.array_equal(plain.b, watched.b)
    assert not plain.interrupted and not watched.interrupted
    assert len(plain.lines) == len(golden_lines)
