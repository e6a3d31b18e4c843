"""Tests of the procedural face renderer (guidance.worlds.embedded.renderer.render) and its dataset (guidance.worlds.embedded.renderer.dataset)."""

import numpy as np
import pytest

from guidance.worlds.embedded.renderer.dataset import (
    SPLIT_ID_RANGES,
    class_of,
    identity_for_class,
    identity_from_id,
    make_dataset,
    nuisance_from_seed,
)
from guidance.worlds.embedded.renderer.render import render
from guidance.worlds.embedded.vocabulary import CLASS_NAMES, CONFUSABLE_PAIRS


def test_render_shape_dtype_and_determinism():
    a = render(identity_from_id(3), nuisance_from_seed(11))
    b = render(identity_from_id(3), nuisance_from_seed(11))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert identity_from_id(3) == identity_from_id(3)
    assert nuisance_from_seed(11) == nuisance_from_seed(11)


def test_render_other_size():
    assert render(identity_from_id(0), nuisance_from_seed(0), size=32).shape == (32, 32, 3)


def test_images_are_not_flat():
    image = render(identity_from_id(5), nuisance_from_seed(5)).astype(np.float32)
    assert image.std() > 20.0


def test_different_identities_give_different_pictures():
    nuisance = nuisance_from_seed(7)
    images = [render(identity_from_id(i), nuisance).astype(np.int32) for i in range(8)]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i] - images[j]).mean() > 2.0


def test_different_nuisances_change_picture_but_not_class():
    images = [render(identity_from_id(42), nuisance_from_seed(s)) for s in range(4)]
    assert all(not np.array_equal(images[0], other) for other in images[1:])
    _, labels, ids, _ = make_dataset(30, seed=3, identities_per_class=1)
    for identity_id in np.unique(ids):
        assert len(np.unique(labels[ids == identity_id])) == 1


def test_nuisance_covers_textures_and_expressions():
    nuisances = [nuisance_from_seed(s) for s in range(200)]
    assert {n.background.kind for n in nuisances} == {"plain", "stripes", "dots", "checker"}
    assert {n.clothing.kind for n in nuisances} == {"plain", "stripes", "dots"}
    assert {n.mouth for n in nuisances} == {"neutral", "smile", "open"}
    assert all(abs(n.angle) <= 8.0 and abs(n.scale - 1.0) <= 0.08 for n in nuisances)


def test_class_names_and_confusable_pairs():
    assert len(CLASS_NAMES) == 10 == len(set(CLASS_NAMES))
    for a, b in CONFUSABLE_PAIRS:
        assert 0 <= a < 10 and 0 <= b < 10 and a != b


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_class_reachable(split):
    lo, hi = SPLIT_ID_RANGES[split]
    for c in range(len(CLASS_NAMES)):
        identities = [identity_for_class(c, i, split) for i in range(3)]
        assert all(class_of(identity) == c for identity in identities)
        assert all(lo <= identity.identity_id < hi for identity in identities)
        assert len({identity.identity_id for identity in identities}) == 3


def test_classes_roughly_balanced_in_the_wild():
    counts = np.bincount([class_of(identity_from_id(i)) for i in range(3000)], minlength=10)
    assert counts.min() > 0.5 * counts.mean()


def test_make_dataset_balanced_and_deterministic():
    images, labels, ids, _ = make_dataset(60, seed=1)
    assert images.shape == (60, 64, 64, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and ids.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, 6))
    for label, identity_id in zip(labels, ids):
        assert class_of(identity_from_id(int(identity_id))) == label
    again = make_dataset(60, seed=1)
    for x, y in zip((images, labels, ids), again):
        np.testing.assert_array_equal(x, y)
    other = make_dataset(60, seed=2)
    assert not np.array_equal(images, other[0])


def test_make_dataset_repeats_identities_with_different_nuisances():
    images, labels, ids, _ = make_dataset(40, seed=0, identities_per_class=2)
    assert len(np.unique(ids)) == 20
    first = np.flatnonzero(ids == ids[0])
    assert len(first) == 2 and not np.array_equal(images[first[0]], images[first[1]])


def test_train_and_heldout_identities_disjoint():
    _, _, train_ids, _ = make_dataset(50, seed=0, split="train")
    _, _, held_ids, _ = make_dataset(50, seed=0, split="heldout")
    assert not set(train_ids.tolist()) & set(held_ids.tolist())
    assert train_ids.max() < SPLIT_ID_RANGES["heldout"][0] <= held_ids.min()


def test_attributes_follow_the_identity_and_the_nuisance():
    from guidance.worlds.embedded.renderer.dataset import attributes_of
    from guidance.worlds.embedded.vocabulary import ATTRIBUTES, UNSEEN

    _, labels, ids, attributes = make_dataset(60, seed=4)
    assert attributes.shape == (60, len(ATTRIBUTES))
    columns = list(ATTRIBUTES)
    for identity_id, row in zip(ids, attributes):
        identity = identity_from_id(int(identity_id))
        assert row[columns.index("glasses")] == ("none", "round", "sun").index(identity.glasses)
        assert row[columns.index("beard")] == int(identity.beard)
        bald = identity.hair_style == "none"
        assert (row[columns.index("hair_colour")] == UNSEEN) == bald
    identity, nuisance = identity_from_id(3), nuisance_from_seed(11)
    row = attributes_of(identity, nuisance)
    assert ATTRIBUTES["background"][row[columns.index("background")]] == nuisance.background.kind
    assert ATTRIBUTES["clothing"][row[columns.index("clothing")]] == nuisance.clothing.kind
