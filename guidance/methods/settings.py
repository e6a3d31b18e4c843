"""Every method option, gathered from the parts that declare them (guidance.methods.options), with what each may take.

`PARTS` names the parts a method's name joins with "+" (guidance.methods.build_method). `Settings` has one field per
option a part declares (and the loop's noise rule); it is checked where it is built: a value out of its range or an
unknown name raises MethodConfigError naming the value and what is allowed. `LIMITS` (ranges), `NAMES` (choices),
`WINDOWS` and `SWEEPS` (what a sweep may vary, with its label) are read from the same declarations; `LIMITS` also
bounds a run's samples, steps, seed, eta and strength (guidance.playground.tasks.TaskRequest checks those).
`register_method` adds a gradient method with its options to all of them.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from guidance.errors import MethodConfigError
from guidance.methods.base import Guidance
from guidance.methods.dps import DPS
from guidance.methods.dsg import DSG
from guidance.methods.figd import FIGD
from guidance.methods.freedom import FreeDoM
from guidance.methods.gfcg import GFCG
from guidance.methods.options import LOOP_OPTIONS, RUN_OPTIONS, Bound, Configurable, Option, check_window
from guidance.methods.predictors import CFG, Autoguidance, Predictor

GRADIENT_METHODS: dict[str, type[FreeDoM]] = {"freedom": FreeDoM, "figd": FIGD, "dps": DPS}
PARTS: dict[str, type[Configurable]] = {"plain": Predictor, "cfg": CFG, "atg": Autoguidance, **GRADIENT_METHODS, "dsg": DSG, "gfcg": GFCG}
BUILT_IN = frozenset(PARTS)

OPTIONS: dict[str, Option] = {}  # every declared option by name: the loop's, the run's and every part's
LIMITS: dict[str, Bound] = {}
NAMES: dict[str, tuple[str, ...]] = {}
WINDOWS: dict[str, str] = {}
SWEEPS: dict[str, str] = {}  # a sweepable option's label
SWEEP_DEFAULTS: dict[str, str] = {}  # its values in the app, to start with


class Settings:
    """Every method option in one place: a frozen dataclass with a field per declared option (guidance.methods.OPTIONS,
    each described where its part declares it), the app's sliders mapping onto them.

    The fields are the declarations of the registered parts: `register_method` redefines them on this same class, so
    every `from guidance.methods import Settings` sees a new part's options.

    Args:
        **values: one keyword per option in OPTIONS whose `setting` is true; each defaults to its declaration's.

    Raises:
        MethodConfigError: a value outside what its option takes (`Option.checked`).
    """

    def __post_init__(self) -> None:
        for name, option in OPTIONS.items():
            if option.setting:
                object.__setattr__(self, name, option.checked(getattr(self, name)))


_GENERATED = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__match_args__", "__dataclass_fields__",
              "__dataclass_params__")  # fmt: skip


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


def _gather() -> None:
    """OPTIONS, LIMITS, NAMES, WINDOWS and the sweeps from the declarations, and Settings' fields, anew (in place)."""
    declared: dict[str, Option] = {}
    for option in (*RUN_OPTIONS, *LOOP_OPTIONS, *(o for part in PARTS.values() for o in part.options)):
        if declared.setdefault(option.name, option) != option:
            raise MethodConfigError(f"option {option.name!r} is declared twice, differently")
    for table in (OPTIONS, LIMITS, NAMES, WINDOWS, SWEEPS, SWEEP_DEFAULTS):
        table.clear()
    OPTIONS.update(declared)
    LIMITS.update({name: o.bound for name, o in declared.items() if o.bound is not None})
    NAMES.update({name: o.choices for name, o in declared.items() if o.choices is not None})
    WINDOWS.update({name: o.window for name, o in declared.items() if o.window is not None})
    SWEEPS.update({name: o.sweep for name, o in declared.items() if o.sweep is not None})
    SWEEP_DEFAULTS.update({name: o.sweep_values for name, o in declared.items() if o.sweep is not None})
    settings = [o for o in declared.values() if o.setting]
    for name in (*_GENERATED, *getattr(Settings, "__dataclass_fields__", {})):
        if name in Settings.__dict__:
            delattr(Settings, name)
    Settings.__annotations__ = {o.name: o.annotation for o in settings}
    for option in settings:
        setattr(Settings, option.name, option.default)
    dataclass(frozen=True)(Settings)


def register_method(name: str, cls: type[Guidance]) -> None:
    """A gradient method (FreeDoM's kind: it takes a predictor, an energy and DSG) under `name`, its declared options
    joining Settings, LIMITS and the app's widgets.

    Args:
        name: the part's name in method names; without "+".
        cls: the method's class, with its `options`.

    Raises:
        MethodConfigError: the name is taken or holds "+", or an option is declared already, differently (the method
            is then not registered).
    """
    if name in PARTS or "+" in name:
        raise MethodConfigError(f"a method part named {name!r} exists already (or holds '+')")
    GRADIENT_METHODS[name] = PARTS[name] = cls
    try:
        _gather()
    except MethodConfigError:
        unregister_method(name)
        raise


def unregister_method(name: str) -> None:
    """Undoes register_method (the built-in parts stay).

    Args:
        name: a registered part's name; an unknown one is a no-op.

    Raises:
        MethodConfigError: `name` is a built-in part.
    """
    if name in BUILT_IN:
        raise MethodConfigError(f"{name!r} is a built-in part")
    GRADIENT_METHODS.pop(name, None)
    PARTS.pop(name, None)
    _gather()


_gather()
__all__ = ["GRADIENT_METHODS", "LIMITS", "NAMES", "OPTIONS", "PARTS", "SWEEPS", "SWEEP_DEFAULTS", "WINDOWS", "Bound", "Settings",
           "check_window", "options_of", "register_method", "unregister_method"]  # fmt: skip
