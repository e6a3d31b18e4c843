"""Every method option, gathered from the parts that declare them (guidance.methods.options), with what each may take.

`PARTS` names the parts a method's name joins with "+" (guidance.methods.build_method); a new part is one entry there.
`Settings` is a frozen dataclass with one field per option that a part declares (and the loop's noise rule), made once
from those declarations: each field's name, type, default and range are written where its part declares it. It is
checked where it is built: a value out of its range or an unknown name raises MethodConfigError naming the value and
what is allowed. `LIMITS` (ranges), `NAMES` (choices), `WINDOWS` and `SWEEPS` (what a sweep may vary, with its label)
are read from the same declarations; `LIMITS` also bounds a run's samples, steps, seed, eta and strength
(guidance.playground.tasks.TaskRequest checks those).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field, make_dataclass

from guidance.errors import MethodConfigError
from guidance.methods.dps import DPS
from guidance.methods.dsg import DSG
from guidance.methods.figd import FIGD
from guidance.methods.freedom import FreeDoM
from guidance.methods.gfcg import GFCG
from guidance.methods.options import LOOP_OPTIONS, RUN_OPTIONS, Bound, Configurable, Option, check_window
from guidance.methods.predictors import CFG, Autoguidance, Predictor

GRADIENT_METHODS: dict[str, type[FreeDoM]] = {"freedom": FreeDoM, "figd": FIGD, "dps": DPS}
PARTS: dict[str, type[Configurable]] = {
    "plain": Predictor,
    "cfg": CFG,
    "atg": Autoguidance,
    **GRADIENT_METHODS,
    "dsg": DSG,
    "gfcg": GFCG,
}


def declared(options: Iterable[Option]) -> dict[str, Option]:
    """Options by name, each name declared once (two parts may share one declaration, e.g. TINY_DECODER).

    Args:
        options: the declarations, in order.

    Returns:
        The options by name, in declaration order.

    Raises:
        MethodConfigError: a name declared twice, differently.
    """
    found: dict[str, Option] = {}
    for option in options:
        if found.setdefault(option.name, option) != option:
            raise MethodConfigError(f"option {option.name!r} is declared twice, differently")
    return found


# every declared option by name: the run's, the loop's and every part's
OPTIONS: dict[str, Option] = declared((*RUN_OPTIONS, *LOOP_OPTIONS, *(o for part in PARTS.values() for o in part.options)))
LIMITS: dict[str, Bound] = {name: o.bound for name, o in OPTIONS.items() if o.bound is not None}
NAMES: dict[str, tuple[str, ...]] = {name: o.choices for name, o in OPTIONS.items() if o.choices is not None}
WINDOWS: dict[str, str] = {name: o.window for name, o in OPTIONS.items() if o.window is not None}
# a sweepable option's label, and its values in the app to start with
SWEEPS: dict[str, str] = {name: o.sweep for name, o in OPTIONS.items() if o.sweep is not None}
SWEEP_DEFAULTS: dict[str, str] = {name: o.sweep_values for name, o in OPTIONS.items() if o.sweep is not None}


SETTINGS_DOC = """Every method option in one place: a frozen dataclass with a field per declared option
    (guidance.methods.OPTIONS, each described where its part declares it), the app's sliders mapping onto them.

    Args:
        **values: one keyword per option in OPTIONS whose `setting` is true; each defaults to its declaration's.

    Raises:
        MethodConfigError: a value outside what its option takes (`Option.checked`).
    """


def _check(self) -> None:
    """Every field through its declaration (`Option.checked`), a count made an int."""
    for name, option in OPTIONS.items():
        if option.setting:
            object.__setattr__(self, name, option.checked(getattr(self, name)))


Settings = make_dataclass(
    "Settings",
    [(o.name, o.annotation, field(default=o.default)) for o in OPTIONS.values() if o.setting],
    namespace={"__post_init__": _check, "__module__": __name__, "__qualname__": "Settings", "__doc__": SETTINGS_DOC},
    frozen=True,
)


def options_of(methods: Iterable[str]) -> list[Option]:
    """The options that the parts of some methods declare, each once, in declaration order.

    Args:
        methods: method names ("figd+dsg", ...); names that are no method (a scheduler's) contribute none.

    Returns:
        The options, ordered as in OPTIONS.
    """
    found: dict[str, Option] = {}
    for method in methods:
        for part in method.lower().split("+"):
            found |= {option.name: option for option in PARTS[part].options} if part in PARTS else {}
    order = list(OPTIONS)
    return sorted(found.values(), key=lambda option: order.index(option.name))


__all__ = [
    "GRADIENT_METHODS",
    "LIMITS",
    "NAMES",
    "OPTIONS",
    "PARTS",
    "SWEEPS",
    "SWEEP_DEFAULTS",
    "WINDOWS",
    "Bound",
    "Settings",
    "check_window",
    "declared",
    "options_of",
]
