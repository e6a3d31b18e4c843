"""Every method option in one place, with the range each value may take (the app's sliders read them too).

`Settings` is checked where it is built: a value out of its range or an unknown name raises
MethodConfigError naming the value and what is allowed. `LIMITS` also bounds a run's samples, steps,
seed, eta and strength (guidance.playground.tasks.TaskRequest checks those).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from guidance.errors import MethodConfigError
from guidance.methods.figd import FISHER_WEIGHTS
from guidance.methods.freedom import STEP_RULES
from guidance.methods.gfcg import SCALE_RULES
from guidance.schedulers.adapters import NOISE_RULES


@dataclass(frozen=True)
class Bound:
    """A number's accepted range [low, high]; `slider` is the narrower range the UI offers (None: the same)."""

    low: float
    high: float
    slider: tuple[float, float] | None = None

    @property
    def shown(self) -> tuple[float, float]:
        return self.slider or (self.low, self.high)

    def check(self, name: str, value: float) -> None:
        if not self.low <= value <= self.high:
            raise MethodConfigError(f"{name} must lie in [{self.low:g}, {self.high:g}], got {value:g}")


LIMITS = {
    "samples": Bound(1, 16, slider=(1, 4)),
    "steps": Bound(1, 1000, slider=(4, 100)),  # 1000: the training schedule's length
    "seed": Bound(0, 2**32 - 1),
    "eta": Bound(0, 1),
    "strength": Bound(0, 20, slider=(0, 3)),  # a multiplier on each method's preset strength (guidance.playground.tasks)
    "cfg_scale": Bound(0, 20, slider=(1, 10)),
    "scale": Bound(0, 100, slider=(0, 2)),  # the constant rule (DPS) takes raw step sizes
    "repeats": Bound(1, 10, slider=(1, 5)),
    "dsg_rate": Bound(0, 1),
    "dsg_interval": Bound(1, 50, slider=(1, 10)),
    "gfcg_max_scale": Bound(0, 10, slider=(0, 5)),
    "gfcg_threshold": Bound(0, 1),
    "gfcg_interval": Bound(1, 50, slider=(1, 10)),
}
NAMES = {"noise_rule": NOISE_RULES, "step_rule": STEP_RULES, "fisher_weight": tuple(FISHER_WEIGHTS), "gfcg_rule": SCALE_RULES}
WINDOWS = {"window": "guidance window", "travel_window": "time-travel window", "gfcg_window": "GFCG window"}


def check_window(what: str, window: tuple[float, float], empty_allowed: bool = False) -> None:
    """0 <= start < end <= 1 (start == end too where an empty window switches the option off)."""
    start, end = window
    if not (0 <= start <= end <= 1 and (empty_allowed or start < end)):
        relation = "<=" if empty_allowed else "<"
        raise MethodConfigError(f"the {what} must satisfy 0 <= start {relation} end <= 1, got {start:g}..{end:g}")


@dataclass(frozen=True)
class Settings:
    """Every method option in one place (the app's sliders map onto these fields).

    cfg_scale: w of CFG or Autoguidance (1 disables CFG for gradient methods).
    noise_rule: how DDIM's eta sets the sampler's noise, "ddim" or "freedom" (guidance/schedulers/adapters.py: NOISE_RULES).
    scale, step_rule, window, repeats, travel_window: FreeDoM/FIGD/DPS step size and schedule.
    fisher_weight: FIGD's w_t profile ("unit", "flat-prior", "gaussian-data"). dsg_rate, dsg_interval: DSG. gfcg_*: GFCG options
    (gfcg_threshold: w_t below this fraction of gfcg_max_scale counts as 0, docs/methods.md GFCG step 3; gfcg_one_call: c_ref and w_t
    from the previous step, so that every branch runs in one batched call, docs/methods.md GFCG, One call; gfcg_interval: the classifier
    reads x0_hat every n steps of the window and its c_ref and w_t hold in between, docs/methods.md GFCG, Interval).
    tiny_decoder: gradient methods (and GFCG's classifier) decode x0_hat with the backbone's tiny decoder. checkpointing: FreeDoM and DPS
    recompute the denoiser's activations in the backward pass (less memory; FIGD keeps none anyway).
    """

    cfg_scale: float = 1.0
    noise_rule: str = "ddim"
    scale: float = 1.0
    step_rule: str = "auto"
    window: tuple[float, float] = (0.0, 1.0)
    repeats: int = 1
    travel_window: tuple[float, float] = (0.0, 1.0)
    fisher_weight: str = "unit"
    dsg_rate: float = 0.1
    dsg_interval: int = 1
    gfcg_max_scale: float = 2.0
    gfcg_rule: str = "confusion"
    gfcg_fused: bool = False
    gfcg_window: tuple[float, float] = (0.0, 1.0)
    gfcg_threshold: float = 0.0
    gfcg_one_call: bool = False
    gfcg_interval: int = 1
    tiny_decoder: bool = False
    checkpointing: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int":  # a count: 3 or 3.0 (as sliders send it) is 3, never 2.5 silently cut to 2
                if isinstance(value, bool) or not float(value).is_integer():
                    raise MethodConfigError(f"{field.name} must be a whole number, got {value!r}")
                object.__setattr__(self, field.name, value := int(value))
            if field.name in LIMITS:
                LIMITS[field.name].check(field.name, value)
            elif field.name in NAMES and value not in NAMES[field.name]:
                raise MethodConfigError(f"{field.name} must be one of {NAMES[field.name]}, got {value!r}")
            elif field.name in WINDOWS:
                check_window(WINDOWS[field.name], value, empty_allowed=field.name == "gfcg_window")
