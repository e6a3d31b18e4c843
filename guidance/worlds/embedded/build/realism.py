"""The realism score's reference: the evaluator features of held-out renders and their k-NN radii.

The evaluator stage writes it next to the evaluator (FILES["realism"]); guidance.worlds.embedded.nets.RealismScore
loads it. For a world whose evaluator is there but whose reference is not:

    python -m guidance.worlds.embedded.build.realism [--world assets/world]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from conditions.images import pixels_from_uint8

from .. import ASSETS, FILES, NET_CLASSES
from ..nets import AttributeEvaluator, evaluator_features, load_net
from ..renderer.dataset import make_dataset

RENDERS, K, SEED = 1000, 3, 41  # held-out renders (make_dataset seed), the k of the k-NN radii


def realism_reference(
    evaluator: AttributeEvaluator, renders: int = RENDERS, k: int = K, seed: int = SEED
) -> tuple[Tensor, Tensor]:
    """The reals of the k-NN realism score (Kynkäänniemi et al. 2019): held-out renders' evaluator features and the
    distance from each to its k-th nearest other, keeping the reals whose radius is at most the median (the
    outliers' wide balls would admit anything).

    Args:
        evaluator: the world's AttributeEvaluator.
        renders: how many held-out renders (class-balanced, make_dataset).
        k: the neighbour whose distance is a real's radius.
        seed: make_dataset's seed.

    Returns:
        (features (R, D), radii (R,)) of the kept reals, float32 on the CPU.
    """
    images = make_dataset(renders, seed=seed, split="heldout")[0]
    features = evaluator_features(evaluator, pixels_from_uint8(images))
    radii = torch.cdist(features, features).kthvalue(k + 1, dim=1).values  # the 0th neighbour is itself
    dense = radii <= radii.median()
    return features[dense], radii[dense]


def write_realism_reference(
    world: Path, device: str | torch.device = "cpu", renders: int = RENDERS, k: int = K, seed: int = SEED
) -> Path:
    """Computes the realism reference from the world's saved evaluator and writes it into the world's folder.

    Args:
        world: the world's folder, with its evaluator.
        device: where the evaluator reads the renders.
        renders: how many held-out renders.
        k: the neighbour whose distance is a real's radius.
        seed: make_dataset's seed.

    Returns:
        The file written (FILES["realism"] under `world`).
    """
    evaluator = load_net(Path(world) / FILES["evaluator"], device, NET_CLASSES["evaluator"])
    features, radii = realism_reference(evaluator, renders, k, seed)
    path = Path(world) / FILES["realism"]
    metadata = {"renders": str(renders), "k": str(k), "seed": str(seed), "split": "heldout"}
    save_file({"features": features.contiguous(), "radii": radii.contiguous()}, str(path), metadata=metadata)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, default=ASSETS)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    path = write_realism_reference(args.world, args.device)
    print(f"realism reference written to {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
