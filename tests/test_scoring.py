"""Teacher-forced scoring: batched, left-padded, tail-only logits == one row at a time with full logits."""

from __future__ import annotations

import pytest
import torch

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.inference.actions import IDMOutput, generate_idm_outputs
from wm_hub.inference.scoring import (
    action_log_likelihoods,
    output_log_likelihoods,
    position_log_likelihoods,
    target_log_likelihoods,
)


def _reference(backbone, ids, positions):
    """Unbatched forward with all logits: sum of log p(token_t | tokens_<t) over positions."""
    with torch.no_grad():
        logits = backbone.model(input_ids=torch.tensor([ids])).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(sum(log_probs[p - 1, ids[p]] for p in positions))


@pytest.fixture(scope="module")
def triplets():
    world = ShapesWorld(WorldConfig())
    return [world.triplet("test", index) for index in range(3)]


@pytest.mark.parametrize("arch", ["chameleon", "liquid", "emu3"])
def test_action_scores_match_unbatched_reference(tiny_backbones, triplets, arch):
    idm = tiny_backbones(arch)
    actions = ["move the red square up", "x", triplets[2].action.text]  # different lengths -> real left padding
    sources, targets = [t.source for t in triplets], [t.target for t in triplets]
    scores = action_log_likelihoods(idm, sources, targets, actions, batch_size=None)
    for score, source, target, action in zip(scores, sources, targets, actions):
        example = idm.build_idm_sequence(source, target, action)
        positions = [i for i, label in enumerate(example.labels) if label != -100]
        assert score.num_tokens == len(positions) == len(idm.tokenizer(action, add_special_tokens=False).input_ids) + 1
        assert score.total == pytest.approx(_reference(idm, example.input_ids, positions), abs=1e-3)
        assert score.mean == pytest.approx(score.total / score.num_tokens)
    one_by_one = action_log_likelihoods(idm, sources, targets, actions, batch_size=1)
    assert [s.total for s in one_by_one] == pytest.approx([s.total for s in scores], abs=1e-4)


@pytest.mark.parametrize(
    ("arch", "do_sample", "repetition_penalty"),
    [("chameleon", False, None), ("chameleon", True, None), ("liquid", False, None), ("emu3", True, None)]
    + [("chameleon", False, 3.0)],
)
def test_generated_tokens_carry_their_teacher_forced_log_probs(
    tiny_backbones, triplets, monkeypatch, arch, do_sample, repetition_penalty
):
    idm = tiny_backbones(arch)
    # a checkpoint's own generation settings change which tokens are written, not how they are scored
    monkeypatch.setattr(idm.model.generation_config, "repetition_penalty", repetition_penalty or 1.0)
    pairs = [(t.source, t.target) for t in triplets]
    outputs = generate_idm_outputs(idm, pairs, max_new_tokens=6, do_sample=do_sample, temperature=0.7, seed=3)
    assert not idm.model._forward_hooks  # the recorder is gone once generate returns
    for (source, target), output in zip(pairs, outputs):
        assert 0 < len(output.token_ids) == len(output.token_log_probs) <= 6
        assert idm.tokenizer.decode(output.token_ids, skip_special_tokens=True).strip() == output.action
        prompt = idm.build_idm_sequence(source, target).input_ids
        ids = prompt + list(output.token_ids)
        positions = list(range(len(prompt), len(ids)))
        (forced,) = position_log_likelihoods(idm, [ids], [positions])
        # at temperature 1 and over the whole vocabulary, as teacher forcing scores them
        assert output.token_log_probs == pytest.approx(forced.token_log_probs, abs=1e-5)


def _count_forwards(monkeypatch, backbone) -> list[int]:
    calls, forward = [], backbone.model.forward
    monkeypatch.setattr(backbone.model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    return calls


def test_scores_of_what_the_idm_wrote_come_from_its_generation(tiny_backbones, triplets, monkeypatch):
    idm = tiny_backbones("chameleon")
    sources, targets = [t.source for t in triplets], [t.target for t in triplets]
    actions = [t.action.text for t in triplets]
    forced = action_log_likelihoods(idm, sources, targets, actions, batch_size=None)
    # outputs whose tokens are the training format's (the action, then eos): their log-probabilities are the score
    written = []
    for source, target, action, score in zip(sources, targets, actions, forced):
        example = idm.build_idm_sequence(source, target, action)
        tokens = tuple(label for label in example.labels if label != -100)
        written.append(IDMOutput(action, None, tokens, tuple(p - 1.0 for p in score.token_log_probs)))
    calls = _count_forwards(monkeypatch, idm)
    scores = output_log_likelihoods(idm, sources, targets, written, batch_size=None)
    assert calls == []  # no forward pass at all
    assert [s.total for s in scores] == pytest.approx([f.total - f.num_tokens for f in forced])
    assert [s.num_tokens for s in scores] == [f.num_tokens for f in forced]
    # a completion cut by the budget (no eos) or tokens that are not the format's: scored teacher-forced, together
    written[0] = IDMOutput(actions[0], None, written[0].token_ids[:-1], written[0].token_log_probs[:-1])
    written[2] = IDMOutput(actions[2], None, (), ())
    scores = output_log_likelihoods(idm, sources, targets, written, batch_size=None)
    assert len(calls) == 1
    assert scores[0].total == pytest.approx(forced[0].total, abs=1e-5)
    assert scores[2].total == pytest.approx(forced[2].total, abs=1e-5)
    assert scores[1].total == pytest.approx(forced[1].total - forced[1].num_tokens)


def test_target_scores_cover_image_codes_only(tiny_backbones, triplets):
    fdm = tiny_backbones("chameleon")
    scores = target_log_likelihoods(
        fdm, [t.source for t in triplets], [t.action.text for t in triplets], [t.target for t in triplets], 2
    )
    for score, triplet in zip(scores, triplets):
        example = fdm.build_fdm_sequence(triplet.source, triplet.action.text, triplet.target)
        assert score.num_tokens == fdm.image_seq_len
        reference = _reference(fdm, example.input_ids, example.target_image_positions)
        assert score.total == pytest.approx(reference, abs=1e-3)
        assert score.total < 0


def test_bad_positions_are_refused(tiny_backbones):
    backbone = tiny_backbones("chameleon")
    with pytest.raises(ValueError, match="row 1: nothing to score"):
        position_log_likelihoods(backbone, [[1, 2, 3], [1, 2]], [[1], []])
    with pytest.raises(ValueError, match="row 0: positions must lie"):
        position_log_likelihoods(backbone, [[1, 2, 3]], [[3]])


@pytest.mark.parametrize("arch", ["chameleon", "liquid", "emu3"])
def test_candidates_of_one_source_read_it_once_with_the_same_scores(tiny_backbones, triplets, arch, monkeypatch):
    from wm_hub.inference import scoring
    from wm_hub.inference.generation import generate_images

    backbone = tiny_backbones(arch)
    example = triplets[0]
    source = backbone.encode_images([example.source])[0]
    prompt = backbone.build_fdm_sequence(source, example.action.text).input_ids
    candidates = list(generate_images(backbone, [prompt], 8, seed=0, decode=False).image_ids[0])
    rows = ([source] * 8, candidates, [example.action.text] * 8)
    shapes = []
    forward = backbone.model.forward
    monkeypatch.setattr(
        backbone.model, "forward", lambda **kw: (shapes.append(tuple(kw["input_ids"].shape)), forward(**kw))[1]
    )
    shared = action_log_likelihoods(backbone, *rows, batch_size=None)
    # the shared start (bos and the source's block) once, then the 8 rows from there on
    assert shapes[0][0] == 1 and shapes[0][1] > backbone.image_seq_len and shapes[1:] == [(8, shapes[1][1])]
    monkeypatch.setattr(scoring, "SHARED_PREFIX_MIN", 10**9)  # every row read whole
    whole = action_log_likelihoods(backbone, *rows, batch_size=None)
    # equal to float32 rounding: the shared prefix changes the order of the sums (a few ulps of a ~-234 total)
    assert [s.total for s in shared] == pytest.approx([s.total for s in whole], rel=1e-6)
