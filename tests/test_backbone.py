"""What the backbones hold and pass: loaded convolution weights channels-last and frozen, a control map repeated per
batch."""

from __future__ import annotations

import torch


def test_control_map_is_repeated_once_per_batch_size():
    from guidance.backbone import Control

    control = Control(torch.rand(1, 3, 8, 8), scale=0.7)
    doubled = control.for_batch(2)
    assert control.for_batch(1) is control and control.for_batch(2) is doubled
    assert doubled.image.shape[0] == 2 and torch.equal(doubled.image[1], control.image[0]) and doubled.scale == 0.7


def test_loaded_worlds_keep_their_convolution_weights_channels_last(sd_with_tiny_decoder):
    from guidance.worlds.embedded import load_backbone

    for backbone in (sd_with_tiny_decoder, load_backbone()):
        weights = [
            p for net in (backbone.unet, backbone.vae, backbone.controlnet, backbone.tiny_decoder) for p in net.parameters()
        ]
        kernels = [p for p in weights if p.dim() == 4]
        assert len(kernels) > 20 and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
        assert not any(p.requires_grad for p in weights)
