"""Recognition weights (paper Eq. 2): squared L2 of pre-quantisation features, mean 1 over the target image."""

from __future__ import annotations

import pytest
import torch

from wm_hub.training.recognition import recognition_weights


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
