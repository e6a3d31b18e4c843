"""Guidance methods, and `build_method` which turns a name such as "figd+dsg" into one."""
from __future__ import annotations

from guidance.errors import MethodConfigError
from guidance.methods.base import Guidance, Prediction, StepContext, Term, Terms, TimeTravel, Window
from guidance.methods.dps import DPS
from guidance.methods.dsg import DSG
from guidance.methods.figd import FIGD
from guidance.methods.freedom import FreeDoM
from guidance.methods.gfcg import GFCG, Classifier
from guidance.methods.predictors import CFG, Autoguidance, Predictor
from guidance.methods.settings import LIMITS, Bound, Settings

GRADIENT_METHODS = {"freedom": FreeDoM, "figd": FIGD, "dps": DPS}
TOKENS = {"plain", "cfg", "atg", "gfcg", "dsg", *GRADIENT_METHODS}
METHODS = (
    "plain", "cfg", "atg", "gfcg", "cfg+gfcg", "atg+gfcg",
    "freedom", "figd", "dps", "freedom+dsg", "figd+dsg", "dps+dsg",
)  # fmt: skip


def build_method(name: str, settings: Settings | None = None, classifier: Classifier | None = None) -> Guidance:
    """A method from "+"-joined parts: a base (plain, cfg, atg), gfcg, one gradient method, dsg."""
    s = settings or Settings()
    parts = set(name.lower().split("+"))
    if not parts <= TOKENS:
        raise MethodConfigError(f"unknown method parts {sorted(parts - TOKENS)} in {name!r}; known: {sorted(TOKENS)}")
    gradient = parts & set(GRADIENT_METHODS)
    if len(gradient) > 1 or ("dsg" in parts and not gradient):
        raise MethodConfigError(f"{name!r}: DSG plugs into exactly one of {sorted(GRADIENT_METHODS)}")
    predictor = _predictor(parts, s, classifier, use_cfg=bool(gradient) and s.cfg_scale != 1.0)
    if not gradient:
        guidance = Guidance(predictor)
        guidance.name = name.lower()
        return guidance
    cls = GRADIENT_METHODS[gradient.pop()]
    extra = {"fisher_weight": s.fisher_weight} if cls is FIGD else {}
    rule = {} if cls is DPS and s.step_rule == "auto" else {"step_rule": s.step_rule}
    return cls(
        predictor,
        scale=s.scale,
        window=Window(*s.window),
        time_travel=TimeTravel(s.repeats, Window(*s.travel_window)),
        dsg=DSG(s.dsg_rate, s.dsg_interval) if "dsg" in parts else None,
        tiny_decoder=s.tiny_decoder,
        checkpointing=s.checkpointing and cls is not FIGD,
        **rule,
        **extra,
    )


def _predictor(parts: set[str], s: Settings, classifier: Classifier | None, use_cfg: bool) -> Predictor:
    """The predictor of the parts. `use_cfg` (a gradient method with cfg_scale != 1) adds CFG where no base is named,
    under GFCG too: "freedom+gfcg" at cfg_scale 3 runs GFCG on CFG 3, as "freedom" at cfg_scale 3 runs CFG 3."""
    if "gfcg" in parts:
        if classifier is None:
            raise MethodConfigError("GFCG needs a classifier")
        base = "cfg" if "cfg" in parts else "atg" if "atg" in parts else "cfg" if use_cfg else "none"
        base_scale = 1.0 if base == "none" else s.cfg_scale  # GFCG on D_c alone has no base weight to report
        return GFCG(classifier, s.gfcg_max_scale, base, base_scale, s.gfcg_rule, s.gfcg_fused and base == "atg", s.gfcg_window,
                    s.gfcg_threshold, s.tiny_decoder, s.gfcg_one_call, s.gfcg_interval)
    if "atg" in parts:
        return Autoguidance(s.cfg_scale)
    if "cfg" in parts or use_cfg:
        return CFG(s.cfg_scale)
    return Predictor()


__all__ = [
    "CFG", "DPS", "DSG", "FIGD", "GFCG", "LIMITS", "METHODS", "Bound", "Autoguidance", "Classifier", "FreeDoM", "Guidance",
    "Prediction", "Predictor", "Settings", "StepContext", "Term", "Terms", "TimeTravel", "Window", "build_method",
]  # fmt: skip
