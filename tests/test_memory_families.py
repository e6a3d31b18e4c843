"""The memory suite on SDXL and SD 3: their random-weight builders at the published sizes, and the suite's run on
the tiny pipelines of each family."""

from __future__ import annotations

import math

import pytest
from accelerate import init_empty_weights

from guidance.bench import family_random, loading
from guidance.bench.common import Options
from guidance.bench.suites import memory
from guidance.pipelines.denoisers import PipelineBackbone
from guidance.pipelines.loading import load_pipeline
from guidance.worlds import World


@pytest.mark.slow
def test_random_families_have_the_published_denoiser_sizes():
    with init_empty_weights():  # parameters on the meta device: only their shapes
        sdxl, sd3 = family_random.build_sdxl(), family_random.build_sd3()
    assert sum(p.numel() for p in sdxl.unet.parameters()) == pytest.approx(2.567e9, rel=1e-3)
    assert sum(p.numel() for p in sd3.transformer.parameters()) == pytest.approx(2.028e9, rel=1e-3)
    assert sdxl.text_encoder.config.hidden_size + sdxl.text_encoder_2.config.hidden_size == sdxl.unet.config.cross_attention_dim
    assert sd3.text_encoder_3 is None and sd3.vae.config.latent_channels == sd3.transformer.config.in_channels == 16
    assert (
        loading.image_size(Options(backbone="sdxl-random")) == 256
        and loading.image_size(Options(backbone="sd3-random", device="cuda")) == 1024
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sdxl", "sd3"])
def test_memory_suite_runs_on_each_family(tiny_families, family):
    backbone = PipelineBackbone(load_pipeline(str(tiny_families[family])))
    world = World(backbone=backbone, face_detector=None, face_embedder=None, style_features=None, classifier=None, evaluator=None)
    output = memory.run(world, Options(backbone=f"{family}-random", plan_name="no-cfg"))
    by = {row["method"]: row for row in output.rows}
    assert list(by) == ["unguided (plain)", *memory.GUIDED]
    assert by["unguided (plain)"]["task"] == "unguided" and {row["task"] for row in output.rows[1:]} == {"mean colour"}
    assert output.config["scheduler"] == ("flow-sde" if family == "sd3" else "ddim") and output.config["cfg_scale"] == 1.0
    assert all(row["ms_per_step"] > 0 and row["peak_total_mb"] > row["peak_mem_mb"] >= 0 for row in output.rows)
    assert all(math.isnan(row["peak_ratio"]) or row["peak_ratio"] >= 0 for row in output.rows)
    assert [g["goal"][:4] for g in output.goals] == ["Free", "DPS'", "FIGD"] and len(output.notes) == 4
