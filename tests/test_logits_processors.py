"""ImageOnlyLogitsProcessor: image codes where the layout samples, forced tokens elsewhere; GumbelMaxSampler: the
argmax of its output is a sample of the softmax."""

from __future__ import annotations

import torch

from wm_hub.models.logits_processors import GumbelMaxSampler, ImageOnlyLogitsProcessor


def test_layout_steps():
    processor = ImageOnlyLogitsProcessor(
        prompt_length=3,
        layout=torch.tensor([-1, -1, 7, -1, 9]),
        allowed_ids=torch.tensor([1, 2, 4]),
        fallback_token_id=0,
    )
    scores = torch.randn(2, 10)
    for step, expected in [(0, None), (1, None), (2, 7), (3, None), (4, 9), (5, 0), (8, 0)]:
        out = processor(torch.zeros(2, 3 + step, dtype=torch.long), scores.clone())
        finite = torch.isfinite(out)
        if expected is None:
            assert finite[:, [1, 2, 4]].all() and finite.sum() == 6
            torch.testing.assert_close(out[:, [1, 2, 4]], scores[:, [1, 2, 4]])
        else:
            assert finite.sum() == 2 and finite[:, expected].all()


def test_sampling_after_mask_never_leaves_image_vocabulary():
    processor = ImageOnlyLogitsProcessor(
        prompt_length=0, layout=torch.tensor([-1]), allowed_ids=torch.tensor([5, 6]), fallback_token_id=0
    )
    scores = torch.zeros(1000, 10)
    scores[:, 0] = 50.0  # a text token that would dominate without the mask
    probs = processor(torch.zeros(1000, 0, dtype=torch.long), scores).softmax(-1)
    samples = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(0)).flatten()
    assert set(samples.tolist()) == {5, 6}


def test_gumbel_max_sampler_argmax_follows_the_softmax():
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    scores = probs.log().expand(40_000, -1).contiguous()  # the last token is -inf (masked)
    out = GumbelMaxSampler()(torch.zeros(40_000, 0, dtype=torch.long), scores)
    assert torch.isneginf(out[:, 4]).all() and torch.isfinite(out[:, :4]).all()
    frequencies = torch.bincount(out.argmax(-1), minlength=5) / 40_000
    torch.testing.assert_close(frequencies, probs, atol=0.01, rtol=0)  # 4 standard deviations at most: 0.01


def test_gumbel_max_sampler_keeps_scores_finite_when_the_uniform_draw_is_zero(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "uniform_", lambda self, *args, **kwargs: self.zero_())
    scores = torch.tensor([[0.0, 1.0, float("-inf")], [float("-inf"), 0.0, float("-inf")]])
    out = GumbelMaxSampler()(torch.zeros(2, 0, dtype=torch.long), scores)
    assert torch.isfinite(out[0, :2]).all() and torch.isneginf(out[:, 2]).all() and torch.isneginf(out[1, 0])
    assert out.argmax(-1).tolist() == [1, 1]  # the larger score; the one allowed token of a forced step
