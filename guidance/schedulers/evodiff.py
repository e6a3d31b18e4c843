"""EVODiff as a diffusers scheduler.

EVODiff ("entropy-aware variance optimised diffusion inference", official code:
github.com/ShiguiLi/EVODiff, MIT) is a deterministic multistep ODE solver in data
prediction with one model call per step, the cost of DPM-Solver++(2M). This
module implements the statement in ``docs/methods.md``, section "EVODiff";
comments cite its "first step", its steps 1-12 of the steps n = 2..N-1, and
its "last step".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr
from diffusers.schedulers.scheduling_ddpm import betas_for_alpha_bar
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput

_EPS = 1e-12  # keeps denominators away from zero
_PROJ_BOUND = 2.0  # proj(u, v) is clamped to [-2, 2]
_RI_TEMPERATURE = 0.25  # step 5: sigmoid(0.25 |b1|)
_RI_BOUNDS = (0.25, 1.5)  # step 5: r_i in [0.25 r, 1.5 r]
_ZETA_SHIFT = 0.5  # step 11: mu
_SMALL_N = 20  # step 11: the rule for N <= 20 differs from N > 20
_ZERO_SNR_ALPHA_BAR = 2.0**-24  # a_T used when the schedule is rescaled to zero terminal SNR
_CLEAN = -1  # grid label of the clean level (a = 1, sigma = 0), where DDIM's last step lands
SPACINGS = ("linspace", "leading", "trailing")  # diffusers' timestep_spacing values


@dataclass
class EVODiffSchedulerOutput(BaseOutput):
    """Output of :meth:`EVODiffScheduler.step`.

    Args:
        prev_sample: ``(batch, channels, height, width)`` (any ``(batch, channels, ...)``
            shape works), the sample to feed to the model at the next timestep. Between
            calls this is the predictor point x_P of docs/methods.md, EVODiff step 6;
            after the last call it is the final sample x_N (or D(x_N) with ``final_denoise``).
        pred_original_sample: same shape, the data prediction x0_hat = D(sample) at the
            point the model was just evaluated at.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


@dataclass(frozen=True)
class _Predictor:
    """What step n's corrector (docs/methods.md, EVODiff steps 7-12) keeps from its predictor (steps 1-6)."""

    offset: torch.Tensor  # x_P - x_E = sigma_n h / (2 r_i) D1  (step 6)
    d1: torch.Tensor  # D1 (step 4)
    r_i: torch.Tensor  # step 5
    r: float  # step 1
    w: float  # step 2
    beta0: float  # step 3
    h: float  # 1/kappa_n - 1/kappa_{n-1}
    sigma: float  # sigma_n
    ratio: float  # sigma_n / sigma_{n-1}


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """<u, v> per sample and per channel: sums over the dims after the channel dim, kept as size 1."""
    dims = tuple(range(2, u.ndim)) if u.ndim > 2 else (1,)
    return (u * v).sum(dim=dims, keepdim=True)


def _proj(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """proj(u, v) = clamp(<u, v> / <v, v>, -2, 2), one value per sample and channel."""
    return (_dot(u, v) / (_dot(v, v) + _EPS)).clamp(-_PROJ_BOUND, _PROJ_BOUND)


def _make_betas(
    num_train_timesteps: int,
    beta_start: float,
    beta_end: float,
    beta_schedule: str,
    trained_betas: np.ndarray | list[float] | None,
) -> torch.Tensor:
    """The training betas (float64), as the DDPM-family schedulers define them."""
    if trained_betas is not None:
        return torch.as_tensor(trained_betas, dtype=torch.float64)
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(num_train_timesteps).to(torch.float64)
    raise NotImplementedError(f"beta_schedule {beta_schedule!r} is not implemented for EVODiffScheduler")


def _check_betas(betas: torch.Tensor) -> None:
    """Every beta must lie in (0, 1): a_t then falls strictly from 1 towards 0."""
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError(
            f"EVODiffScheduler needs every beta in (0, 1); got betas in [{float(betas.min())}, {float(betas.max())}]"
        )


def _spacing_labels(timestep_spacing: str, steps: int, num_train_timesteps: int, steps_offset: int) -> np.ndarray:
    """The ``steps`` labels (descending) that DPM-Solver++ calls the model at under ``timestep_spacing``."""
    if timestep_spacing == "linspace":
        return np.linspace(0, num_train_timesteps - 1, steps + 1).round()[::-1][:-1]
    if timestep_spacing == "leading":
        return np.arange(steps, 0, -1) * (num_train_timesteps // (steps + 1)) + float(steps_offset)
    return np.arange(num_train_timesteps, 0, -num_train_timesteps / steps)[:steps].round() - 1


def _grid_labels(alphas_cumprod: np.ndarray, steps: int, time_grid: str, timestep_spacing: str, steps_offset: int) -> np.ndarray:
    """steps + 1 strictly decreasing integer labels: the spacing's ``steps`` call labels, then label 0.

    "time": the call labels are DPM-Solver++'s under ``timestep_spacing``; "logsnr": uniform in
    lambda = log(alpha / sigma) from the spacing's first label down to label 0, inverted by
    interpolation over the labels. Label i is kept in [steps - i, T-1 - i] and rounded labels that
    collide are pushed up by one, so the labels stay in range and every step has h > 0. With
    steps = T every label is called and the last level is the clean one (label -1, sigma = 0);
    with steps = 0 (one ``final_denoise`` call) the grid is label T-1 alone.
    """
    last = len(alphas_cumprod) - 1
    if steps > last:
        return np.arange(last, _CLEAN - 1, -1)
    if steps == 0:
        return np.array([last])
    calls = _spacing_labels(timestep_spacing, steps, last + 1, steps_offset)
    if time_grid == "logsnr":
        lambdas = 0.5 * (np.log(alphas_cumprod) - np.log1p(-alphas_cumprod))
        top = int(min(calls[0], last))
        targets = np.linspace(lambdas[top], lambdas[0], steps + 1)
        labels = np.interp(targets, lambdas[::-1], np.arange(last, -1, -1, dtype=np.float64))
    else:
        labels = np.append(calls, 0.0)
    index = np.arange(steps + 1)
    grid = np.clip(np.round(labels).astype(np.int64), steps - index, last - index)
    for i in range(steps - 1, -1, -1):
        grid[i] = max(grid[i], grid[i + 1] + 1)
    return grid


def _custom_grid(timesteps: list[int] | np.ndarray | torch.Tensor, last: int, final_denoise: bool) -> np.ndarray:
    """The grid for caller-given call labels: them, then label 0 (the clean level if they end at 0).

    With ``final_denoise`` the last given label is the denoising call's, so it closes the grid.
    """
    labels = np.asarray(torch.as_tensor(timesteps).cpu(), dtype=np.float64)
    if labels.ndim != 1 or len(labels) == 0 or not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"timesteps must be a non-empty list of integer labels, got {timesteps!r}")
    grid = labels.astype(np.int64)
    if not (bool((grid[1:] < grid[:-1]).all()) and 0 <= grid[-1] and grid[0] <= last):
        raise ValueError(f"timesteps must be strictly decreasing labels in [0, {last}], got {grid.tolist()}")
    if final_denoise:
        return grid
    return np.append(grid, 0 if grid[-1] > 0 else _CLEAN)


class EVODiffScheduler(SchedulerMixin, ConfigMixin):
    """EVODiff (ShiguiLi/EVODiff) with one model call per ``step``, as in docs/methods.md, EVODiff.

    The solver runs on S + 1 grid labels g_0 > ... > g_S, S = ``num_inference_steps``
    (S = ``num_inference_steps`` - 1 with ``final_denoise``), 1 <= ``num_inference_steps`` <= T.
    ``timestep_spacing`` places them as DPM-Solver++ places its calls: with ``time_grid="time"``
    g_0 .. g_{S-1} are DPM-Solver++'s labels for the same config; with "logsnr" the grid runs
    uniformly in lambda from DPM-Solver++'s first label. g_S is label 0, except with S = T
    (every label is called) or custom ``timesteps`` ending at 0: then it is the clean level
    (sigma = 0, where DDIM's last step lands), and "Last step" takes its sigma -> 0 limit
    (sigma_S h -> 1, c_f = r_f = 1).
    ``timesteps`` holds the labels the model is called at: g_0 .. g_{S-1}, plus g_S with
    ``final_denoise``. Call k (k = 0, 1, ...) gets the model output at (``sample``, g_k):

    * k = 0: ``sample`` is x_0 (pure noise). m_A = D(x_0); returns x_1 by the EVODiff
      "first step" (first order, exactly DDIM / DPM-Solver++(1)).
    * k = 1: ``sample`` is the iterate x_1. m_B <- m_A, m_A <- D(x_1); runs steps 1-6 of
      step n = 2 and returns its predictor point x_P (not an iterate).
    * k = 2 .. S-1: ``sample`` is step k's predictor point x_P, so the model output is the
      call of step 6, m_P. Steps 7-12 give the iterate x_k and shift m_B <- m_A,
      m_A <- m_P (step 12); then steps 1-6 of step k + 1 return its predictor point.
    * the call with k = S-1 finishes with the EVODiff "last step" (no call of its own)
      instead and returns x_S. With ``final_denoise`` call k = S returns D(x_S, g_S).
    * with ``lower_order_final=False`` step S is a full step (1-12) like the others: call
      k = S-1 returns its predictor point and call k = S, at g_S, its corrected x_S.

    So NFE = ``len(timesteps)`` = ``num_inference_steps``, as in the official sampler
    (which also counts the denoising call in its step budget); with ``final_denoise`` or
    ``lower_order_final=False``, S = ``num_inference_steps`` - 1 and g_S is called too. Step 12's x_E is recovered
    as ``sample`` - (x_P - x_E), so an edit the caller makes to the returned predictor
    point (e.g. an energy-guidance shift) is carried into the iterate x_n. In step 2,
    t_min, t_max are the continuous times (label + 1) / T of g_S and g_0 (also when a
    pipeline starts mid-schedule with ``set_begin_index``; that first call is a "first step").
    The N of step 11 is S. With S = 1 the only step is the "first step".

    Coefficients are computed in float64 (schedule) and float32 (per-sample tensors,
    float64 if the sample is float64), whatever the model's dtype; ``prev_sample`` is
    returned in the dtype of ``sample``.

    Args:
        num_train_timesteps: number of training noise levels T.
        beta_start, beta_end, beta_schedule, trained_betas: the training schedule
            ("linear", "scaled_linear", "squaredcos_cap_v2", or explicit betas).
        prediction_type: what the model predicts: "epsilon", "v_prediction" or "sample".
        rescale_betas_zero_snr: the betas were rescaled to zero terminal SNR in training
            (a_T is then set to 2**-24, as diffusers' DPM-Solver does).
        time_grid: "logsnr" (default, uniform in lambda) or "time" (DPM-Solver++'s labels).
        timestep_spacing, steps_offset: diffusers' "linspace" (default), "leading" (with
            ``steps_offset``) or "trailing", honoured on either grid (see above).
        final_denoise: spend the last call on x0 = D(x_S, g_S).
        lower_order_final: the official sampler's option: True (its default) ends with
            the "last step" rule and no call; False makes step S a full step whose
            corrector calls the model at g_S (needs ``num_inference_steps`` >= 3 and no
            ``final_denoise``).
        clip_sample, clip_sample_range: clamp every data prediction to
            [-range, range] before the solver uses it, as DPM-Solver++'s thresholding
            with ``sample_max_value=1`` does. [ours]: not in the paper. It reads the key
            of DDIM's option, so a DDPM config with ``clip_sample=True`` keeps EVODiff's
            x0 in range as it does DDIM's (DDIM, unlike a data-prediction solver, then
            still uses the model's own eps for its direction term).
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon",
        rescale_betas_zero_snr: bool = False,
        time_grid: Literal["logsnr", "time"] = "logsnr",
        final_denoise: bool = False,
        lower_order_final: bool = True,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
    ) -> None:
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type {prediction_type!r} is not supported by EVODiffScheduler")
        if time_grid not in ("logsnr", "time"):
            raise ValueError(f"time_grid must be 'logsnr' or 'time', got {time_grid!r}")
        if timestep_spacing not in SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {SPACINGS}, got {timestep_spacing!r}")
        if final_denoise and not lower_order_final:
            raise ValueError("final_denoise needs lower_order_final=True (the last call is the denoising one)")
        betas = _make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        _check_betas(betas)
        if rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        if rescale_betas_zero_snr:
            alphas_cumprod[-1] = _ZERO_SNR_ALPHA_BAR
        self._alphas_cumprod64 = alphas_cumprod.numpy()
        self.betas = betas.float()
        self.alphas_cumprod = alphas_cumprod.float()
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, dtype=torch.int64)
        self._begin_index: int | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._step_index: int | None = None
        self._m_a: torch.Tensor | None = None
        self._m_b: torch.Tensor | None = None
        self._pending: _Predictor | None = None

    @property
    def step_index(self) -> int | None:
        """Index into ``timesteps`` of the next ``step`` call (None before the first)."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """Index of the first timestep, set by pipelines that start mid-schedule (img2img)."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start the next run at ``timesteps[begin_index]``; that call is then a "first step".

        Args:
            begin_index: the index into ``timesteps`` of the first call.
        """
        self._begin_index = begin_index

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        """Build the grid and ``timesteps`` (int64, descending) and reset the solver state.

        Pass ``num_inference_steps`` (1 .. T calls) or ``timesteps``, the strictly decreasing
        labels to call the model at (``timestep_spacing`` and ``time_grid`` then do not apply).

        Args:
            num_inference_steps: the number of model calls, 1 .. T.
            device: where ``timesteps`` goes.
            timesteps: the call labels, strictly decreasing in [0, T-1].

        Raises:
            ValueError: both or neither of ``num_inference_steps`` and ``timesteps``, or either out of range.
        """
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("Must pass exactly one of `num_inference_steps` or `timesteps`.")
        last = self.config.num_train_timesteps - 1
        if timesteps is not None:
            grid = _custom_grid(timesteps, last, self.calls_at_end)
        else:
            grid = self._spaced_grid(num_inference_steps)
        calls = len(grid) if self.calls_at_end else len(grid) - 1
        if not self.config.lower_order_final and calls < 3:
            raise ValueError(f"lower_order_final=False needs at least 3 model calls, got {calls}")
        a = np.where(grid >= 0, self._alphas_cumprod64[np.maximum(grid, 0)], 1.0)
        self._solver_steps = len(grid) - 1
        self._alpha = np.sqrt(a).tolist()
        self._sigma = np.sqrt(1.0 - a).tolist()
        with np.errstate(divide="ignore"):  # lambda = inf at the clean level
            self._lambda = (0.5 * (np.log(a) - np.log1p(-a))).tolist()
        self._tau = ((grid + 1) / self.config.num_train_timesteps).tolist()
        self.num_inference_steps = calls
        self.timesteps = torch.from_numpy(grid[:calls].copy()).to(device)
        self._begin_index = None
        self._reset_state()

    def _spaced_grid(self, num_inference_steps: int) -> np.ndarray:
        """The grid of ``num_inference_steps`` calls from ``time_grid`` and ``timestep_spacing``."""
        config = self.config
        if not 1 <= num_inference_steps <= config.num_train_timesteps:
            raise ValueError(f"num_inference_steps={num_inference_steps}: need 1 <= steps <= {config.num_train_timesteps}")
        solver_steps = num_inference_steps - 1 if self.calls_at_end else num_inference_steps
        return _grid_labels(self._alphas_cumprod64, solver_steps, config.time_grid, config.timestep_spacing, config.steps_offset)

    @property
    def calls_at_end(self) -> bool:
        """Whether the model is also called at g_S (``final_denoise``, or a full last step)."""
        return self.config.final_denoise or not self.config.lower_order_final

    def scale_model_input(self, sample: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Identity: the VP model takes x_t unscaled."""
        return sample

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise, with t the integer labels (one per sample).

        Args:
            original_samples: ``(batch, channels, ...)`` clean samples x0.
            noise: same shape.
            timesteps: ``(batch,)`` integer labels.

        Returns:
            The noisy samples x_t, same shape and dtype.
        """
        a = self.alphas_cumprod.to(device=original_samples.device, dtype=original_samples.dtype)
        a = a[timesteps.to(original_samples.device)].flatten()
        a = a.reshape(-1, *([1] * (original_samples.ndim - 1)))
        return a.sqrt() * original_samples + (1.0 - a).sqrt() * noise

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> EVODiffSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """Take one model output at (``sample``, ``timestep``) and return the next model input.

        Args:
            model_output: the model's output at ``sample``, ``(batch, channels, ...)``;
                under CFG the guided output.
            timestep: the label the model was called with (an entry of ``timesteps``).
            sample: the point the model was evaluated at, same shape.
            generator: unused (the solver is deterministic); accepted for pipelines.
            return_dict: return an :class:`EVODiffSchedulerOutput` instead of a tuple.

        Returns:
            :class:`EVODiffSchedulerOutput`, or the tuple ``(prev_sample, pred_original_sample)``.

        Raises:
            ValueError: ``set_timesteps`` was not called, or ``timestep`` is not in ``timesteps``.
        """
        if self.num_inference_steps is None:
            raise ValueError("Call set_timesteps before step")
        if self._step_index is None:
            self._init_step_index(timestep)
        k = self._step_index
        dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
        x_in = sample.to(dtype)
        # 0. Data prediction at the evaluated point: m_0 ("first step"), D(x_1), or m_P (step 6).
        x0 = self._data_prediction(model_output.to(dtype), x_in, k)
        if k == self._solver_steps and self.config.final_denoise:
            # 0'. The final_denoise call: x0 = D(x_S, g_S).
            prev = x0
        elif k == self._solver_steps:
            # 7-11 of step S, then 12's iterate x_S (lower_order_final=False: no shift is needed after it).
            prev = self._corrector(self._pending, x_in, x0)
        else:
            # 7-12. Finish step k at its predictor point (uses the old m_A, m_B).
            x = x_in if self._pending is None else self._corrector(self._pending, x_in, x0)
            # 12. m_B <- m_A, m_A <- the new prediction (carried forward, no extra call).
            self._m_b, self._m_a = self._m_a, x0
            self._pending = None
            n = k + 1
            if self._m_b is None:
                # "First step": first-order step, exactly DDIM / DPM-Solver++(1).
                prev = self._first_order(x, n)
            elif n == self._solver_steps and self.config.lower_order_final:
                # "Last step": no model call.
                prev = self._last_step(x, n)
            else:
                # 1-6. Predictor of step n; the next call evaluates the model at x_P.
                self._pending, prev = self._predictor(x, n)
        self._step_index += 1
        prev_sample = prev.to(sample.dtype)
        pred_original_sample = x0.to(sample.dtype)
        if not return_dict:
            return prev_sample, pred_original_sample
        return EVODiffSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def _init_step_index(self, timestep: int | torch.Tensor) -> None:
        if self._begin_index is not None:
            self._step_index = self._begin_index
            return
        matches = (self.timesteps == torch.as_tensor(timestep).to(self.timesteps.device)).nonzero()
        if len(matches) == 0:
            raise ValueError(f"timestep {timestep} is not in the scheduler's timesteps")
        self._step_index = int(matches[0])

    def _data_prediction(self, model_output: torch.Tensor, sample: torch.Tensor, i: int) -> torch.Tensor:
        """x0_hat at grid point i from an epsilon, v or x0 prediction (clamped with ``clip_sample``)."""
        alpha, sigma = self._alpha[i], self._sigma[i]
        if self.config.prediction_type == "epsilon":
            x0 = (sample - sigma * model_output) / alpha
        elif self.config.prediction_type == "v_prediction":
            x0 = alpha * sample - sigma * model_output
        else:
            x0 = model_output
        if self.config.clip_sample:
            return x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
        return x0

    def _h(self, n: int) -> float:
        """h = 1/kappa_n - 1/kappa_{n-1} = e^{lambda_n} - e^{lambda_{n-1}} (infinite at the clean level)."""
        return math.exp(self._lambda[n]) - math.exp(self._lambda[n - 1])

    def _sigma_h(self, n: int) -> float:
        """sigma_n h = alpha_n - sigma_n e^{lambda_{n-1}}: finite at the clean level, where it is 1."""
        return self._alpha[n] - self._sigma[n] * self._alpha[n - 1] / self._sigma[n - 1]

    def _first_order(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """x_E = (sigma_n / sigma_{n-1}) x + sigma_n h m_A ("first step")."""
        return (self._sigma[n] / self._sigma[n - 1]) * x + self._sigma_h(n) * self._m_a

    def _balance(self, new: torch.Tensor, old: torch.Tensor, beta0: float, w: float) -> torch.Tensor:
        """b = (1 - w) beta0 + w proj(new, old) (steps 4 and 7)."""
        return (1.0 - w) * beta0 + w * _proj(new, old)

    def _damped_ratio(self, b1: torch.Tensor, r: float) -> torch.Tensor:
        """r_i = clamp(sigmoid(0.25 |b1|) r, 0.25 r, 1.5 r) (step 5)."""
        low, high = _RI_BOUNDS
        return (torch.sigmoid(_RI_TEMPERATURE * b1.abs()) * r).clamp(low * r, high * r)

    def _predictor(self, x: torch.Tensor, n: int) -> tuple[_Predictor, torch.Tensor]:
        """Steps 1-6 of step n from the iterate x at g_{n-1}; returns the state and x_P."""
        sigma, sigma_prev, h = self._sigma[n], self._sigma[n - 1], self._h(n)
        ratio = sigma / sigma_prev
        x_e = self._first_order(x, n)
        # 1. r = (lambda_{n-1} - lambda_{n-2}) / (lambda_n - lambda_{n-1}).
        lam = self._lambda
        r = (lam[n - 1] - lam[n - 2]) / (lam[n] - lam[n - 1])
        # 2. w = 0.5 (1 - ((t_n + t_min) / (t_max + t_min))^2).
        t_min, t_max = self._tau[self._solver_steps], self._tau[0]
        w = 0.5 * (1.0 - ((self._tau[n] + t_min) / (t_max + t_min)) ** 2)
        # 3. beta0 = sqrt((sigma_n / sigma_{n-1}) / (sigma_{n-1} / sigma_{n-2})).
        beta0 = math.sqrt(ratio / (sigma_prev / self._sigma[n - 2]))
        # 4. b1 = (1 - w) beta0 + w proj(m_A, m_B); D1 = m_A - b1 m_B.
        b1 = self._balance(self._m_a, self._m_b, beta0, w)
        d1 = self._m_a - b1 * self._m_b
        # 5. r_i = clamp(sigmoid(0.25 |b1|) r, 0.25 r, 1.5 r).
        r_i = self._damped_ratio(b1, r)
        # 6. x_P = x_E + sigma_n h / (2 r_i) D1.
        offset = sigma * h / (2.0 * r_i) * d1
        state = _Predictor(offset=offset, d1=d1, r_i=r_i, r=r, w=w, beta0=beta0, h=h, sigma=sigma, ratio=ratio)
        return state, x_e + offset

    def _corrector(self, p: _Predictor, sample: torch.Tensor, m_p: torch.Tensor) -> torch.Tensor:
        """Steps 7-12: the iterate x_n from m_P = D(x_P, t_n); ``sample`` is x_P."""
        m_a, m_b = self._m_a, self._m_b
        # 7. b2 = (1 - w) beta0 + w proj(m_P, m_A); D2 = m_P - b2 m_A.
        b2 = self._balance(m_p, m_a, p.beta0, p.w)
        d2 = m_p - b2 * m_a
        # 8. Bp = D1 / (r h), Bn = r D2 / h; eta* = 0.5 proj(Bn + Bp, Bn - Bp); eta = 0.5 sigmoid(|eta*|).
        b_prev, b_next = p.d1 / (p.r * p.h), p.r * d2 / p.h
        eta = 0.5 * torch.sigmoid((0.5 * _proj(b_next + b_prev, b_next - b_prev)).abs())
        # 9. B = -(eta / r) D1 + (1 - eta) r D2.
        big_b = -(eta / p.r) * p.d1 + (1.0 - eta) * p.r * d2
        # 10. P = x_P - x_E - sigma_n h / (2 r_i) B; zeta* = proj(P, D1) / (h sigma_n).
        resid = p.offset - p.sigma * p.h / (2.0 * p.r_i) * big_b
        zeta_star = _proj(resid, p.d1) / (p.h * p.sigma)
        # 11. zeta from |zeta*| - mu, by the N <= 20 or N > 20 rule.
        zeta = self._zeta(zeta_star, m_a, m_b, p)
        # 12. x_n = x_E + sigma_n h / (2 zeta) B, with x_E = x_P - (x_P - x_E).
        return (sample - p.offset) + p.sigma * p.h / (2.0 * zeta + _EPS) * big_b

    def _zeta(self, zeta_star: torch.Tensor, m_a: torch.Tensor, m_b: torch.Tensor, p: _Predictor) -> torch.Tensor:
        """Step 11 (m_A, m_B are the predictions before step 12's shift)."""
        shifted = zeta_star.abs() - _ZETA_SHIFT
        if self._solver_steps <= _SMALL_N:
            return torch.sigmoid(shifted)
        c = torch.sigmoid(_proj(m_a, (m_a - m_b) / p.h) * (2.0 - p.ratio**2))
        return torch.sigmoid(-shifted * c)

    def _last_step(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """ "Last step": x_N = c_f x_E + 0.5 sigma_N h (m_A - r_f m_B), no model call."""
        sigma, sigma_prev = self._sigma[n], self._sigma[n - 1]
        rho = sigma / sigma_prev
        c_f = 1.0 - math.sqrt(sigma * sigma_prev)
        r_f = 1.0 - 0.5 * math.sqrt(rho) if rho < 0.5 else 1.0 - 0.5 * math.sqrt(rho - 0.5)
        x_e = self._first_order(x, n)
        return c_f * x_e + 0.5 * self._sigma_h(n) * (self._m_a - r_f * self._m_b)
