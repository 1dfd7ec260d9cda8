"""Recognition weights (paper Eq. 2): squared L2 of pre-quantisation features, mean 1 over the target image."""

from __future__ import annotations

import datasets
import pytest
import torch

from wm_hub.training.recognition import normalize_over_batch, recognition_weights


def test_squared_distance_normalised_to_mean_one():
    source = torch.zeros(2, 4, 3)
    target = torch.zeros(2, 4, 3)
    target[0, 1] = torch.tensor([1.0, 1.0, 0.0])  # distance 2
    target[0, 3] = torch.tensor([2.0, 0.0, 0.0])  # distance 4
    target[1] = 5.0  # all equal -> all ones
    raw = recognition_weights(source, target, normalization="none")
    torch.testing.assert_close(raw[0], torch.tensor([0.0, 2.0, 0.0, 4.0]))
    weights = recognition_weights(source, target)
    torch.testing.assert_close(weights[0], torch.tensor([0.0, 4 / 3, 0.0, 8 / 3]))
    torch.testing.assert_close(weights.mean(dim=-1), torch.ones(2))
    torch.testing.assert_close(weights[1], torch.ones(4))


def test_identical_images_give_all_ones_and_shapes_must_match():
    features = torch.randn(16, 8)
    torch.testing.assert_close(recognition_weights(features, features.clone()), torch.ones(16))
    with pytest.raises(ValueError, match="feature shapes differ"):
        recognition_weights(features, features[:4])
    with pytest.raises(ValueError, match="unknown weight normalization"):
        recognition_weights(features, features, normalization="max")


def test_a_weight_floor_keeps_a_share_for_unchanged_tokens_and_zero_is_the_papers_weights():
    source = torch.zeros(1, 4, 2)
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 0.0]]])  # one token changes by 4 (squared)
    paper = recognition_weights(source, target, "mean")
    assert torch.allclose(paper, torch.tensor([[0.0, 0.0, 0.0, 4.0]]))
    assert torch.equal(recognition_weights(source, target, "mean", floor=0.0), paper)
    floored = recognition_weights(source, target, "mean", floor=0.25)
    assert torch.allclose(floored, torch.tensor([[0.25, 0.25, 0.25, 3.25]])) and torch.isclose(
        floored.mean(), torch.tensor(1.0)
    )
    with pytest.raises(ValueError, match="floor must be in"):
        recognition_weights(source, target, floor=1.5)


def test_batch_normalisation_divides_by_the_mean_over_every_image_token_of_the_batch():
    # two images: one changes a lot (distances 6, 6), one a little (2, 2); per image both would average 1
    raw = recognition_weights(torch.zeros(2, 2, 1), torch.tensor([[[6.0**0.5]] * 2, [[2.0**0.5]] * 2]), "batch")
    torch.testing.assert_close(raw, torch.tensor([[6.0, 6.0], [2.0, 2.0]]))  # raw here; the trainer normalises
    weights = torch.tensor([[1.0, 6.0, 6.0, 1.0], [1.0, 2.0, 2.0, 1.0]])  # text tokens keep 1
    image = torch.tensor([[False, True, True, False]] * 2)
    normalized = normalize_over_batch(weights, image)
    torch.testing.assert_close(normalized, torch.tensor([[1.0, 1.5, 1.5, 1.0], [1.0, 0.5, 0.5, 1.0]]))
    assert torch.equal(recognition_weights(torch.zeros(2, 2, 1), torch.zeros(2, 2, 1), "mean"), torch.ones(2, 2))
    floored = normalize_over_batch(weights, image, floor=0.5)
    torch.testing.assert_close(floored[:, 1], torch.tensor([1.25, 0.75]))
    torch.testing.assert_close(
        normalize_over_batch(torch.full((1, 3), 4.0), torch.ones(1, 3, dtype=torch.bool)), torch.ones(1, 3)
    )


def test_the_fdm_trainer_normalises_each_batch_when_asked():
    from trl import SFTConfig

    from wm_hub.models.tiny import build_tiny_backbone
    from wm_hub.training.trainers import FDMTrainer

    backbone = build_tiny_backbone("chameleon")
    image_id = int(backbone.image_token_ids[0])
    eos = backbone.eos_token_id
    labels = torch.tensor([[-100, image_id, image_id, eos], [-100, image_id, image_id, eos]])
    weights = torch.tensor([[1.0, 6.0, 6.0, 1.0], [1.0, 2.0, 2.0, 1.0]])
    rows = datasets.Dataset.from_list([{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}])
    for normalization, expected in (
        ("mean", weights),
        ("batch", torch.tensor([[1.0, 1.5, 1.5, 1.0], [1.0, 0.5, 0.5, 1.0]])),
    ):
        args = SFTConfig(output_dir="unused", use_cpu=True, report_to=[])
        args.weight_normalization = normalization
        trainer = FDMTrainer(backbone=backbone, args=args, train_dataset=rows)
        torch.testing.assert_close(trainer._loss_weights(weights, labels), expected)
