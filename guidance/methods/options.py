"""How a method declares its options, once, next to its code (as diffusers' register_to_config records a model's).

Each part of a method (a predictor, FreeDoM and its kin, DSG, GFCG) lists its `options`: every `Option` names the
setting, its default, what it may take (a `Bound`, `choices`, a window) and how the app shows it. guidance.methods.settings
gathers the declarations of every part in its `PARTS` into `Settings`, `LIMITS`, `NAMES`, `WINDOWS` and the sweepable
settings; guidance.methods.build_method hands each part its declared options (`Configurable.arguments`); the app draws
a widget per shown option. The options of the loop (samples, steps, seed, eta, the noise rule) and the playground's
strength are declared here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from guidance.errors import MethodConfigError
from guidance.schedulers.adapters import NOISE_RULES

GROUPS = ("gradient", "gfcg", "decoder")  # the app's method-settings sections, in the order it shows them


@dataclass(frozen=True)
class Bound:
    """A number's accepted range [low, high], and the narrower range the UI offers.

    Attributes:
        low: the smallest value accepted.
        high: the largest value accepted.
        slider: the range the UI offers (None: the same).
    """

    low: float
    high: float
    slider: tuple[float, float] | None = None

    @property
    def shown(self) -> tuple[float, float]:
        """The range the UI offers."""
        return self.slider or (self.low, self.high)

    def check(self, name: str, value: float) -> None:
        """Checks that `value` lies in [low, high].

        Args:
            name: the option's name, for the message.
            value: the value to check.

        Raises:
            MethodConfigError: the value lies outside.
        """
        if not self.low <= value <= self.high:
            raise MethodConfigError(f"{name} must lie in [{self.low:g}, {self.high:g}], got {value:g}")


def check_window(what: str, window: tuple[float, float], empty_allowed: bool = False) -> None:
    """Checks 0 <= start < end <= 1 (start == end too where an empty window switches the option off).

    Args:
        what: the window's name, for the message.
        window: (start, end) as progress fractions.
        empty_allowed: accept start == end.

    Raises:
        MethodConfigError: the window does not satisfy it.
    """
    start, end = window
    if not (0 <= start <= end <= 1 and (empty_allowed or start < end)):
        relation = "<=" if empty_allowed else "<"
        raise MethodConfigError(f"the {what} must satisfy 0 <= start {relation} end <= 1, got {start:g}..{end:g}")


@dataclass(frozen=True)
class Option:
    """One option, declared by the part that reads it.

    Attributes:
        name: the setting (a field of guidance.methods.Settings, unless `setting` is False: the loop's per-run values).
        default: its value unless a preset or request says otherwise; its type is the option's (an int is a count: 3
            or 3.0 is 3, never 2.5 cut to 2).
        bound / choices / window: what it may take: a range, one of some names, or a progress window [start, end)
            named `window` in messages (`empty_window`: start == end switches it off).
        param: the constructor's parameter it feeds ("" : the option's name; None: none, the part composes it
            itself); `convert` turns the value into the argument.
        label, step, info: the app's widget (a slider for a bound, a radio for choices, two sliders for a window, a
            checkbox for a flag); `group` is the method-settings section that shows it
            (guidance.methods.options.GROUPS), None for none; `excludes`: a flag that ticking this one unticks (and
            the other way round).
        sweep: the label of a sweep over it (None: not sweepable), `sweep_values` the app's default values.
        setting: False for the loop's per-run values, which are no field of Settings.
    """

    name: str
    default: Any
    bound: Bound | None = None
    choices: tuple[str, ...] | None = None
    window: str | None = None
    empty_window: bool = False
    param: str | None = ""
    convert: Callable[[Any], Any] | None = None
    label: str = ""
    step: float = 1.0
    info: str | None = None
    group: str | None = None
    excludes: str | None = None
    sweep: str | None = None
    sweep_values: str = ""
    setting: bool = True

    @property
    def whole(self) -> bool:
        """A count: its default is an int."""
        return type(self.default) is int

    @property
    def annotation(self) -> str:
        """The type of its Settings field, as a string."""
        return "tuple[float, float]" if self.window else type(self.default).__name__

    def checked(self, value: Any) -> Any:
        """The value, a count made an int, once it lies within what the option takes.

        Args:
            value: a value for the option.

        Returns:
            The value (an int for a count).

        Raises:
            MethodConfigError: a count that is not whole, or a value outside the bound, choices or window.
        """
        if self.whole:
            if isinstance(value, bool) or not float(value).is_integer():
                raise MethodConfigError(f"{self.name} must be a whole number, got {value!r}")
            value = int(value)
        if self.bound is not None:
            self.bound.check(self.name, value)
        elif self.choices is not None and value not in self.choices:
            raise MethodConfigError(f"{self.name} must be one of {self.choices}, got {value!r}")
        elif self.window is not None:
            check_window(self.window, value, empty_allowed=self.empty_window)
        return value

    def typed(self, value: Any) -> Any:
        """A sweep's value as the option takes it.

        Args:
            value: the value as a sweep gives it (often a string).

        Returns:
            A name, a count or a number.

        Raises:
            ValueError: the value does not convert.
        """
        return str(value) if self.choices is not None else int(value) if self.whole else float(value)

    def argument(self, value: Any) -> Any:
        """The constructor argument of a value: `convert` applied, where there is one."""
        return value if self.convert is None else self.convert(value)


class Configurable:
    """A part with declared options: `arguments` maps option values onto its constructor's parameters.

    Attributes:
        options: the part's declared options.
    """

    options: tuple[Option, ...] = ()

    @classmethod
    def arguments(cls, values: Any) -> dict[str, Any]:
        """Constructor keyword arguments from option values.

        Args:
            values: guidance.methods.Settings, or any object with the options as attributes.

        Returns:
            Each declared option with a parameter, converted, by parameter name.
        """
        return {
            option.param or option.name: option.argument(getattr(values, option.name))
            for option in cls.options
            if option.param is not None
        }


def without(options: tuple[Option, ...], *names: str) -> tuple[Option, ...]:
    """The options less those named (a subclass that does not take some of its parent's).

    Args:
        options: the declarations.
        *names: the options to leave out.

    Returns:
        The rest, in order.
    """
    return tuple(option for option in options if option.name not in names)


def by_name(options: Mapping[str, Option] | tuple[Option, ...]) -> dict[str, Option]:
    """Options by name, from a mapping or a tuple of declarations."""
    return dict(options) if isinstance(options, Mapping) else {option.name: option for option in options}


# The loop's options: per run (a request's; guidance.playground.tasks.TaskRequest checks them) and the noise rule, a
# setting (guidance/schedulers/adapters.py: NOISE_RULES)
RUN_OPTIONS = (
    Option("samples", 1, Bound(1, 16, slider=(1, 4)), label="Samples", setting=False),
    Option(
        "steps",
        25,
        Bound(1, 999, slider=(4, 100)),
        label="Steps",
        setting=False,  # 999: DDIM with steps_offset 1 at 1000 steps would ask for label 1000
        sweep="steps / NFE",
        sweep_values="6, 10, 20",
    ),
    Option("seed", 0, Bound(0, 2**32 - 1), label="Seed", setting=False),
    Option(
        "eta",
        0.0,
        Bound(0, 1),
        label="DDIM eta",
        step=0.05,
        info="DSG needs eta > 0",
        setting=False,
        sweep="DDIM eta",
        sweep_values="0.25, 0.5, 1",
    ),
    # a multiplier on each method's guiding value (guidance.playground.tasks.method_settings)
    Option(
        "strength",
        1.0,
        Bound(0, 20, slider=(0, 3)),
        label="Guidance strength (x each method's preset)",
        step=0.05,
        info="1: every method at its own preset scale (its dsg_rate with +dsg), shown in the table",
        group="gradient",
        sweep="strength (x each method's preset)",
        sweep_values="0.5, 1, 2",
        setting=False,
    ),
)
LOOP_OPTIONS = (Option("noise_rule", "ddim", choices=NOISE_RULES, param=None),)  # how DDIM's eta sets the sampler's noise
# The guidance path's decoder, for the gradient methods and GFCG's classifier: the backbone's tiny one or the full VAE
TINY_DECODER = Option(
    "tiny_decoder",
    False,
    label="Tiny decoder on the guidance path (faster; the final image still uses the full VAE)",
    group="decoder",
)
