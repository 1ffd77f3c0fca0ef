"""The shape every optimiser of the family has, as in ``torch.optim.Optimizer``.

An optimiser holds the parameters it updates and what it carries from one step to the next:
- ``params``: the parameters, a list of arrays (for the trainer, [W, b]);
- ``step(grads, learning_rate)``: one update of every parameter from its gradient;
- ``state``: one dict per parameter (SGD's velocity, say), empty until a member fills it;
- ``final_params()``: the parameters a run ends with (the iterates; averaging changes that).

A member names the :class:`scratchlr.config.Config` fields it reads (``fields``), builds
itself from a config (``from_config``) and checks those settings (``check``). With
``in_place``, the gradients, the state and the parameters are overwritten rather than
rebuilt (the fast step's buffers): both ways make the same calls, so give the same bits.
"""

from __future__ import annotations

from typing import Any, ClassVar

Array = Any  # numpy.ndarray or cupy.ndarray


class Optimizer:
    """The family's common shape; a member overrides :meth:`step` (and, if it reads settings
    of its own, ``fields``, :meth:`from_config` and :meth:`check`)."""

    fields: ClassVar[tuple[str, ...]] = ()  # the Config fields this member reads
    # Whether the config's weight decay is the member's own (AdamW's, decoupled from the
    # gradient) rather than the objective's lambda (scratchlr.config.Config.penalty).
    decoupled: ClassVar[bool] = False

    def __init__(self, params: list[Array], in_place: bool = False) -> None:
        self.params = list(params)
        self.in_place = in_place
        self.state: list[dict[str, Array]] = [{} for _ in self.params]

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """One update of every parameter, ``grads[i]`` being the gradient of ``params[i]``."""
        raise NotImplementedError

    def final_params(self) -> list[Array]:
        """The parameters a run ends with: the iterates."""
        return self.params

    @classmethod
    def from_config(cls, params: list[Array], config: Any, in_place: bool) -> Optimizer:
        """The member over ``params`` with the settings of ``config``."""
        return cls(params, in_place=in_place)

    @classmethod
    def check(cls, config: Any) -> None:
        """``ValueError`` (one line naming the flag) if ``config`` is no setting for this member."""
