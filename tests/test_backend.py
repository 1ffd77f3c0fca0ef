"""The backend shim: NumPy fallback, CuPy detection, clear errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from scratchlr import backend


def test_cpu_is_numpy() -> None:
    b = backend.select("cpu")
    assert b.xp is np and b.name == "numpy" and b.device == "cpu"
    assert isinstance(b.to_numpy(np.arange(3)), np.ndarray)


def test_unknown_device_raises() -> None:
    with pytest.raises(backend.BackendError, match="unknown device 'tpu'"):
        backend.select("tpu")


def test_auto_falls_back_when_cupy_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert backend.select("auto").name == "numpy"
    with pytest.raises(backend.BackendError, match="CuPy is not importable"):
        backend.select("gpu")


def broken_cupy(error: Exception) -> types.ModuleType:
    """A cupy that imports but whose CUDA runtime fails, like one with no driver."""
    fake = types.ModuleType("cupy")

    def fail(*args, **kwargs):
        raise error

    fake.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=fail), Device=fail
    )
    fake.arange = fail
    return fake


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"),
        OSError("libcuda.so.1: cannot open shared object file"),
    ],
)
def test_cupy_without_usable_gpu_falls_back(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", broken_cupy(error))
    assert backend.select("auto").name == "numpy"
    with pytest.raises(backend.BackendError, match="no CUDA GPU is usable") as info:
        backend.select("gpu")
    assert str(error).split(":")[0] in str(info.value)


def test_cupy_with_zero_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = broken_cupy(RuntimeError())
    fake.cuda.runtime.getDeviceCount = lambda: 0
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(backend.BackendError, match="no CUDA device"):
        backend.select("gpu")


def test_namespace_of_numpy_arrays() -> None:
    assert backend.namespace_of(np.zeros(2), 3.0) is np
