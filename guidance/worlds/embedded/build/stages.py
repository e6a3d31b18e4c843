"""The stages that build the embedded world, by name, in the order `all` runs them (train.py is the command line).

`data` renders the datasets once and caches them as .npy under the workdir (data.py); `vae` trains the autoencoder
and caches the training latents, `decoder` fine-tunes its decoder on them with the encoder frozen (autoencoder.py);
`evaluator` trains the metrics-only attribute evaluator and writes the realism score's reference (recognisers.py);
`denoiser` the class-conditional UNet (EMA snapshots kept), `guide` picks the Autoguidance guide among the
snapshots, `controlnet` trains a Canny ControlNet, `estimates` caches decoded clean estimates x0_hat of noised
training latents (denoisers.py), which the guiding networks `classifier`, `face` (embedder) and `detector` learn to
read (recognisers.py); `style` trains the network whose early features the style energy reads (style.py). Each
model stage trains with training.train_loop under its Loop of the configuration (config.py) and writes its weights
under the output folder.

Every stage function takes (cfg: Config, out: Path, work: Path, resume: bool): the configuration, the output folder
(the world's assets), the work folder (cached data, checkpoints, logs) and whether to resume from checkpoints; it
returns the entry train.py records in the manifest (empty for the UNRECORDED stages).
"""

from __future__ import annotations

from .. import FILES, LABEL_EMBEDDING
from .autoencoder import stage_decoder, stage_vae
from .data import stage_data
from .denoisers import stage_controlnet, stage_denoiser, stage_estimates, stage_guide
from .recognisers import stage_classifier, stage_detector, stage_evaluator, stage_face
from .style import stage_style

STAGES = (
    "data",
    "vae",
    "decoder",
    "evaluator",
    "denoiser",
    "guide",
    "controlnet",
    "estimates",
    "classifier",
    "face",
    "detector",
    "style",
)
STAGE_FUNCTIONS = {
    "data": stage_data,
    "vae": stage_vae,
    "decoder": stage_decoder,
    "evaluator": stage_evaluator,
    "denoiser": stage_denoiser,
    "guide": stage_guide,
    "controlnet": stage_controlnet,
    "estimates": stage_estimates,
    "classifier": stage_classifier,
    "face": stage_face,
    "detector": stage_detector,
    "style": stage_style,
}
UNRECORDED = ("data", "estimates")
PARAM_FILES = {
    "vae": [f"{FILES['vae']}/diffusion_pytorch_model.safetensors"],
    "decoder": [f"{FILES['vae']}/diffusion_pytorch_model.safetensors"],
    "evaluator": [FILES["evaluator"]],
    "classifier": [FILES["classifier"]],
    "face": [FILES["face_embedder"]],
    "detector": [FILES["face_detector"]],
    "style": [FILES["style_net"]],
    "denoiser": [f"{FILES['unet']}/diffusion_pytorch_model.safetensors", f"{FILES['unet']}/{LABEL_EMBEDDING}"],
    "guide": [f"{FILES['guide_unet']}/diffusion_pytorch_model.safetensors", f"{FILES['guide_unet']}/{LABEL_EMBEDDING}"],
    "controlnet": [f"{FILES['controlnet']}/diffusion_pytorch_model.safetensors"],
}
