"""Array-backend shim: CuPy when a CUDA GPU is usable, NumPy otherwise.

All engine code takes its array namespace ``xp`` from here, so one code path serves
both: ``xp.exp``, ``xp.zeros`` ... are NumPy's on the CPU and CuPy's on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

DEVICES = ("auto", "cpu", "gpu")


class BackendError(RuntimeError):
    """The requested device cannot be used (e.g. ``--device gpu`` with no usable GPU)."""


@dataclass(frozen=True)
class Backend:
    """An array namespace and how to bring its arrays back to the host.

    ``xp``: the module whose functions the engine calls (numpy or cupy).
    ``name``: ``"numpy"`` or ``"cupy"``; ``device``: ``"cpu"`` or ``"gpu"``;
    ``device_name``: what the summary line prints (CPU or GPU model name).
    ``to_numpy``: device array -> host ``numpy.ndarray`` (a host sync on a GPU).
    """

    xp: ModuleType
    name: str
    device: str
    device_name: str
    to_numpy: Callable[[Any], np.ndarray]


def numpy_backend() -> Backend:
    """The CPU backend: NumPy, where ``to_numpy`` is ``numpy.asarray``."""
    return Backend(np, "numpy", "cpu", "cpu", np.asarray)


def cupy_backend() -> Backend:
    """The GPU backend, or ``BackendError`` saying why CuPy or a CUDA device is not usable.

    A CuPy that imports but has no driver or device is caught here, by a real
    allocation and kernel launch, rather than failing later inside the training loop.
    """
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA library underneath
        raise BackendError(f"CuPy is not importable ({exc}); install scratchlr[gpu]") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise BackendError("CuPy found no CUDA device")
        float(cupy.arange(4, dtype=cupy.float32).sum())  # allocate, launch, sync
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        gpu_name = props["name"]
        gpu_name = gpu_name.decode() if isinstance(gpu_name, bytes) else str(gpu_name)
    except BackendError:
        raise
    except Exception as exc:  # no driver, no device, out of memory, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendError(f"CuPy imports but no CUDA GPU is usable ({reason})") from None
    return Backend(cupy, "cupy", "gpu", gpu_name, cupy.asnumpy)


def select(device: str = "auto") -> Backend:
    """Backend for ``device``: ``"cpu"`` -> NumPy; ``"gpu"`` -> CuPy or ``BackendError``;
    ``"auto"`` -> CuPy when a GPU is usable, else NumPy."""
    if device == "cpu":
        return numpy_backend()
    if device == "gpu":
        return cupy_backend()
    if device == "auto":
        try:
            return cupy_backend()
        except BackendError:
            return numpy_backend()
    raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


def namespace_of(*arrays: Any) -> ModuleType:
    """The array module owning ``arrays``: cupy for CuPy arrays, numpy otherwise."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np
