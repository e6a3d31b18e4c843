"""DPS (Chung et al., ICLR 2023): the gradient through the denoiser with a constant step size."""

from __future__ import annotations

from guidance.methods.freedom import FreeDoM


class DPS(FreeDoM):
    """FreeDoM's gradient with rho_t = scale at every step: the step DSG's official code plugs into.

    Args:
        *args, **kwargs: FreeDoM's.
        step_rule: FreeDoM's step rule, "constant" by default.
    """

    name = "dps"

    def __init__(self, *args, step_rule: str = "constant", **kwargs):
        super().__init__(*args, step_rule=step_rule, **kwargs)

    @classmethod
    def arguments(cls, values) -> dict:
        """FreeDoM's, the "auto" step rule being DPS's own constant one."""
        arguments = super().arguments(values)
        return {name: value for name, value in arguments.items() if (name, value) != ("step_rule", "auto")}
