"""Guidance methods, and `build_method` which turns a name such as "figd+dsg" into one, each part built with the options
it declares (guidance.methods.options) taken from Settings."""

from __future__ import annotations

from guidance.errors import MethodConfigError
from guidance.methods.base import Guidance, Prediction, StepContext, Term, Terms, TimeTravel, Window
from guidance.methods.dps import DPS
from guidance.methods.dsg import DSG
from guidance.methods.figd import FIGD
from guidance.methods.freedom import FreeDoM
from guidance.methods.gfcg import GFCG, Classifier
from guidance.methods.options import Option
from guidance.methods.predictors import CFG, Autoguidance, Predictor
from guidance.methods.settings import GRADIENT_METHODS, LIMITS, OPTIONS, PARTS, Bound, Settings, options_of

METHODS = (
    "plain",
    "cfg",
    "atg",
    "gfcg",
    "cfg+gfcg",
    "atg+gfcg",
    "freedom",
    "figd",
    "dps",
    "freedom+dsg",
    "figd+dsg",
    "dps+dsg",
)


def build_method(name: str, settings: Settings | None = None, classifier: Classifier | None = None) -> Guidance:
    """A method from "+"-joined parts: a base (plain, cfg, atg), gfcg, one gradient method, dsg.

    Args:
        name: the parts joined with "+", in any case and order (e.g. "figd+dsg", "atg+gfcg"; METHODS lists the usual ones).
        settings: the option values each part takes (`Configurable.arguments`); None: every option's default.
        classifier: GFCG's classifier; needed when "gfcg" is a part.

    Returns:
        The gradient method's class with its predictor (and DSG) where one is named, else a `Guidance` on the predictor.

    Raises:
        MethodConfigError: an unknown part, two gradient methods, "dsg" without one, "gfcg" without a classifier, or a
            part's constructor rejecting its options.
    """
    s = settings or Settings()
    parts = set(name.lower().split("+"))
    if not parts <= set(PARTS):
        raise MethodConfigError(f"unknown method parts {sorted(parts - set(PARTS))} in {name!r}; known: {sorted(PARTS)}")
    gradient = parts & set(GRADIENT_METHODS)
    if len(gradient) > 1 or ("dsg" in parts and not gradient):
        raise MethodConfigError(f"{name!r}: DSG plugs into exactly one of {sorted(GRADIENT_METHODS)}")
    predictor = _predictor(parts, s, classifier, use_cfg=bool(gradient) and s.cfg_scale != 1.0)
    if not gradient:
        guidance = Guidance(predictor)
        guidance.name = name.lower()
        return guidance
    cls = GRADIENT_METHODS[gradient.pop()]
    return cls(predictor, dsg=DSG(**DSG.arguments(s)) if "dsg" in parts else None, **cls.arguments(s))


def _predictor(parts: set[str], s: Settings, classifier: Classifier | None, use_cfg: bool) -> Predictor:
    """The predictor of the parts. `use_cfg` (a gradient method with cfg_scale != 1) adds CFG where no base is named,
    under GFCG too: "freedom+gfcg" at cfg_scale 3 runs GFCG on CFG 3, as "freedom" at cfg_scale 3 runs CFG 3."""
    if "gfcg" in parts:
        if classifier is None:
            raise MethodConfigError("GFCG needs a classifier")
        base = "cfg" if "cfg" in parts else "atg" if "atg" in parts else "cfg" if use_cfg else "none"
        base_scale = 1.0 if base == "none" else s.cfg_scale  # GFCG on D_c alone has no base weight to report
        options = GFCG.arguments(s)
        options["fused"] = options["fused"] and base == "atg"  # the fused variant is Autoguidance's
        return GFCG(classifier, base=base, base_scale=base_scale, **options)
    if "atg" in parts:
        return Autoguidance(**Autoguidance.arguments(s))
    if "cfg" in parts or use_cfg:
        return CFG(**CFG.arguments(s))
    return Predictor()


__all__ = [
    "CFG",
    "DPS",
    "DSG",
    "FIGD",
    "GFCG",
    "LIMITS",
    "METHODS",
    "OPTIONS",
    "Bound",
    "Autoguidance",
    "Classifier",
    "FreeDoM",
    "Guidance",
    "Option",
    "Prediction",
    "Predictor",
    "Settings",
    "StepContext",
    "Term",
    "Terms",
    "TimeTravel",
    "Window",
    "build_method",
    "options_of",
]
