"""The seed's running sums of the logged loss and accuracy, kept on the device.

The seed adds each batch's loss and accuracy to ``average_loss`` / ``average_acc`` and,
at a display step, prints their mean and starts again from zero. :class:`LoggedSums`
holds those two sums as device scalars (the loss in the model's dtype, the accuracy in
float32, as TF's ``tf.cast`` made it), so nothing is read back to the host until the
training loop prints them.
"""

from __future__ import annotations

from typing import Any


class LoggedSums:
    """sum_k J_k and sum_k acc_k over the batches since the last :meth:`take`, added one
    batch at a time, in step order, in float arithmetic of their own dtypes."""

    def __init__(self, xp: Any, dtype: Any) -> None:
        self.xp, self.dtype = xp, xp.dtype(dtype)
        self.loss, self.acc = self.zeros()

    def zeros(self) -> tuple[Any, Any]:
        """Fresh sums: 0 in the loss dtype, 0 in float32."""
        return self.xp.zeros((), self.dtype), self.xp.zeros((), self.xp.float32)

    def add(self, J: Any, acc: Any) -> None:
        """loss += J_k, acc += acc_k for one batch."""
        self.loss += J
        self.acc += acc

    def add_each(self, J: Any, acc: Any) -> None:
        """:meth:`add` for J_1, ..., J_K and acc_1, ..., acc_K (1-D), in that order.

        NumPy's ``cumsum`` is that running sum, addition by addition; CuPy's is a parallel
        scan, which adds in another order, so there the batches are added one at a time.
        """
        xp = self.xp
        if xp.__name__ != "numpy":
            for k in range(len(J)):
                self.add(J[k], acc[k])
            return
        self.loss = xp.cumsum(xp.concatenate((self.loss.reshape(1), J)))[-1, ...]
        self.acc = xp.cumsum(xp.concatenate((self.acc.reshape(1), acc)))[-1, ...]

    def take(self) -> tuple[Any, Any]:
        """(loss sum, accuracy sum), as device scalars; the sums start again from zero."""
        sums = self.loss, self.acc
        self.loss, self.acc = self.zeros()
        return sums
