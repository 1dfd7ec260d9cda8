"""The recognition-weighted token loss: hand computation, plain-SFT equality, zero-weight gradients, statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from trl.trainer.utils import add_fused_lm_head

from wm_hub.data.collator import WorldModelCollator
from wm_hub.models.base import IGNORE_INDEX
from wm_hub.models.tiny import build_tiny_backbone
from wm_hub.training.losses import TokenLossStats, weighted_token_loss

VOCAB = 11
IMAGE_IDS = torch.tensor([5, 6, 7, 8])


def shifted_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What TRL's fused head returns: log p(labels[:, t + 1]) at position t, and whether that label is top-1."""
    next_labels = labels[:, 1:].clamp(min=0)
    log_probs = logits[:, :-1].log_softmax(dim=-1).gather(-1, next_labels[..., None])[..., 0]
    return log_probs, logits[:, :-1].argmax(dim=-1) == next_labels


@pytest.fixture()
def batch():
    """Three rows of different lengths (right padding), prompts without labels, image and text labels, zero weights."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor(
        [
            [IGNORE_INDEX, IGNORE_INDEX, 5, 6, 2, 3, 1, IGNORE_INDEX],
            [IGNORE_INDEX, 7, 7, 8, 4, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
            [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 9, 5, 8, 6, 2],
        ]
    )
    weights = 2 * torch.rand(labels.shape, generator=generator)
    weights[0, 3] = weights[1, 2] = weights[2, 5] = 0.0
    weights[labels == IGNORE_INDEX] = 0.0
    logits = torch.randn(*labels.shape, VOCAB, generator=generator)
    return logits, labels, weights


def test_loss_and_statistics_equal_a_hand_computation(batch):
    logits, labels, weights = batch
    loss, stats = weighted_token_loss(*shifted_log_probs(logits, labels), labels, weights, IMAGE_IDS)

    total = image_nll = image_weighted = text_nll = 0.0
    image_count = text_count = correct = 0
    for row in range(labels.shape[0]):
        for position in range(1, labels.shape[1]):
            label = int(labels[row, position])
            if label == IGNORE_INDEX:
                continue
            nll = -float(logits[row, position - 1].log_softmax(dim=-1)[label])
            weight = float(weights[row, position])
            total += weight * nll
            correct += int(logits[row, position - 1].argmax()) == label
            if label in IMAGE_IDS.tolist():
                image_nll, image_weighted, image_count = (
                    image_nll + nll,
                    image_weighted + weight * nll,
                    image_count + 1,
                )
            else:
                text_nll, text_count = text_nll + nll, text_count + 1
    count = image_count + text_count
    assert count == int((labels[:, 1:] != IGNORE_INDEX).sum()) == 14
    assert loss.item() == pytest.approx(total / count, rel=1e-6)
    metrics = stats.metrics()
    assert metrics["loss_image"] == pytest.approx(image_nll / image_count, rel=1e-6)
    assert metrics["loss_image_weighted"] == pytest.approx(image_weighted / image_count, rel=1e-6)
    assert metrics["loss_text"] == pytest.approx(text_nll / text_count, rel=1e-6)
    assert metrics["token_accuracy"] == pytest.approx(correct / count)
    assert (stats.image_tokens.item(), stats.text_tokens.item()) == (image_count, text_count) == (8, 6)


def test_num_items_in_batch_replaces_the_local_token_count(batch):
    logits, labels, weights = batch
    log_probs, is_top1 = shifted_log_probs(logits, labels)
    local, _ = weighted_token_loss(log_probs, is_top1, labels, weights, IMAGE_IDS)
    global_count, _ = weighted_token_loss(log_probs, is_top1, labels, weights, IMAGE_IDS, torch.tensor(60))
    torch.testing.assert_close(global_count, local * 14 / 60)


def test_unit_weights_give_exactly_the_plain_cross_entropy(batch):
    logits, labels, _ = batch
    log_probs, is_top1 = shifted_log_probs(logits, labels)
    unweighted, _ = weighted_token_loss(log_probs, is_top1, labels, None, IMAGE_IDS)
    ones, _ = weighted_token_loss(log_probs, is_top1, labels, torch.ones(labels.shape), IMAGE_IDS)
    assert torch.equal(unweighted, ones)
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(ones, plain)


def test_unit_weights_give_the_models_own_loss_through_the_fused_head():
    backbone = build_tiny_backbone("chameleon")
    image_ids = backbone.image_token_ids
    rows = []
    for action in ("go", "move the red square two cells left"):
        example = backbone.build_fdm_sequence(image_ids[:64], action, image_ids[64:128])
        rows.append({"input_ids": example.input_ids, "labels": example.labels})
    batch = WorldModelCollator(backbone.pad_token_id)(rows)
    assert (batch["attention_mask"] == 0).any()  # the rows differ in length: padding is part of the check
    model = backbone.model
    with torch.no_grad():
        own = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        add_fused_lm_head(model, outputs=("log_probs", "is_top1"))
        fused = model(**batch, fused_lm_head=True)
    loss, stats = weighted_token_loss(
        fused.log_probs, fused.is_top1, batch["labels"], batch["token_weights"], image_ids
    )
    torch.testing.assert_close(loss, own)
    assert stats.image_tokens.item() == 2 * backbone.image_seq_len
    assert stats.text_tokens.item() == 2 * 2  # eoi and eos of each row


def test_zero_weight_tokens_get_no_gradient(batch):
    logits, labels, weights = batch
    logits = logits.clone().requires_grad_(True)
    loss, _ = weighted_token_loss(*shifted_log_probs(logits, labels), labels, weights, IMAGE_IDS)
    loss.backward()
    # Position t predicts labels[:, t + 1]: its gradient is zero exactly when that token weighs 0 or has no label.
    grad_norm = logits.grad[:, :-1].abs().sum(dim=-1)
    no_gradient = weights[:, 1:] == 0
    assert no_gradient.sum() == 3 + int((labels[:, 1:] == IGNORE_INDEX).sum())
    assert (grad_norm[no_gradient] == 0).all()
    assert (grad_norm[~no_gradient] > 0).all()
    assert (logits.grad[:, -1] == 0).all()


def test_a_batch_without_labels_gives_a_finite_zero_loss(batch):
    logits, labels, weights = batch
    labels = torch.full_like(labels, IGNORE_INDEX)
    logits = logits.clone().requires_grad_(True)
    loss, stats = weighted_token_loss(*shifted_log_probs(logits, labels), labels, weights, IMAGE_IDS)
    loss.backward()
    assert loss.item() == 0.0 and (logits.grad == 0).all()
    assert stats.metrics() == {}


def test_statistics_add_up_and_leave_out_means_over_no_tokens(batch):
    logits, labels, weights = batch
    log_probs, is_top1 = shifted_log_probs(logits, labels)
    _, first = weighted_token_loss(log_probs[:1], is_top1[:1], labels[:1], weights[:1], IMAGE_IDS)
    _, rest = weighted_token_loss(log_probs[1:], is_top1[1:], labels[1:], weights[1:], IMAGE_IDS)
    _, whole = weighted_token_loss(log_probs, is_top1, labels, weights, IMAGE_IDS)
    summed = TokenLossStats.from_tensor(first.to_tensor() + rest.to_tensor())
    assert summed.metrics() == pytest.approx(whole.metrics())

    text_only = labels.clone()
    text_only[torch.isin(text_only, IMAGE_IDS)] = 1
    _, stats = weighted_token_loss(log_probs, is_top1, text_only, weights, IMAGE_IDS)
    assert set(stats.metrics()) == {"loss_text", "token_accuracy"}
