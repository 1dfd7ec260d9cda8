"""An IDM that reasons first (``idm_rationale``): it writes the changed cells, then `` => `` and the action."""

from __future__ import annotations

import datasets
import pytest
import torch

from wm_hub.data.mixture import SourceConfig, build_mixture
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet
from wm_hub.data.shapes_world import NO_CHANGE, ShapesWorld, WorldConfig, describe_changes
from wm_hub.inference.actions import IDMOutput, generate_idm_outputs
from wm_hub.inference.scoring import action_log_likelihoods
from wm_hub.models.base import IGNORE_INDEX
from wm_hub.models.processing import idm_completion, split_idm_completion
from wm_hub.training.pretokenize import PretokenizeConfig, pretokenize
from wm_hub.training.rewards import FDMTargetLikelihood

WORLD = WorldConfig()


@pytest.fixture(scope="module")
def triplets():
    world = ShapesWorld(WORLD)
    return [world.triplet("test", index) for index in range(3)]


@pytest.fixture()
def reasoning_idm(tiny_backbones, monkeypatch):
    """The tiny chameleon backbone set to reason first for one test (the session's backbone is restored after)."""
    idm = tiny_backbones("chameleon")
    monkeypatch.setattr(idm.processor, "idm_rationale", True)
    return idm


def test_the_completion_is_the_rationale_then_the_action_and_splits_back():
    assert idm_completion("move the red square up by 1 cell", "row 2: a -> b", True) == (
        "row 2: a -> b => move the red square up by 1 cell"
    )
    assert idm_completion("remove the red square", "ignored", False) == "remove the red square"
    assert split_idm_completion(" row 2: a -> b => remove the red square ", True) == (
        "row 2: a -> b",
        "remove the red square",
    )
    assert split_idm_completion("row 2 => => remove it", True) == ("row 2 =>", "remove it")  # the last separator
    assert split_idm_completion("row 2, column 3: red squ", True) == ("row 2, column 3: red squ", "")  # cut short
    assert split_idm_completion(" remove it ", False) == (None, "remove it")
    with pytest.raises(ValueError, match="rationale"):
        idm_completion("remove it", None, True)


def test_shapes_world_rows_carry_the_changed_cells_as_rationale(triplets):
    world = ShapesWorld(WORLD)
    rows = list(world.triplet_rows("test", 3))
    for row, triplet in zip(rows, triplets):
        assert row["rationale"] == describe_changes(triplet.source_scene, triplet.target_scene) != NO_CHANGE
        assert row["action"] == triplet.action.text
    move = next(t for t in (world.triplet("train", i) for i in range(50)) if t.action.kind == "move")
    name, (x, y) = f"{move.action.subject.colour} {move.action.subject.shape}", move.action.subject.cell
    rationale = describe_changes(move.source_scene, move.target_scene)
    assert f"row {y + 1}, column {x + 1}: {name} -> nothing" in rationale and f"nothing -> {name}" in rationale


def test_labels_cover_the_rationale_the_separator_and_the_action(reasoning_idm, triplets):
    idm, triplet = reasoning_idm, triplets[0]
    rationale = describe_changes(triplet.source_scene, triplet.target_scene)
    prompt = idm.build_idm_sequence(triplet.source, triplet.target)
    example = idm.build_idm_sequence(triplet.source, triplet.target, triplet.action.text, rationale)
    start = len(prompt.input_ids)
    assert example.input_ids[:start] == prompt.input_ids and set(example.labels[:start]) == {IGNORE_INDEX}
    assert example.labels[start:] == example.input_ids[start:]
    assert example.input_ids[-1] == idm.eos_token_id
    completion = idm.tokenizer.decode(example.input_ids[start:-1])
    assert completion == f"{rationale} => {triplet.action.text}"
    with pytest.raises(ValueError, match="rationale"):
        idm.build_idm_sequence(triplet.source, triplet.target, triplet.action.text)


def test_a_reasoning_idm_is_scored_on_its_own_greedy_rationale_and_the_action(reasoning_idm, triplets):
    idm = reasoning_idm
    sources, targets = [t.source for t in triplets], [t.target for t in triplets]
    actions = [t.action.text for t in triplets]
    outputs = generate_idm_outputs(idm, list(zip(sources, targets)))
    assert all(isinstance(output.rationale, str) for output in outputs)
    given = action_log_likelihoods(idm, sources, targets, actions, None, [o.rationale for o in outputs])
    generated = action_log_likelihoods(idm, sources, targets, actions, batch_size=2)
    assert [s.total for s in generated] == pytest.approx([s.total for s in given], rel=1e-6)  # batch 2 vs all
    for score, output, action in zip(given, outputs, actions):
        text = idm_completion(action, output.rationale, True)
        assert score.num_tokens == len(idm.tokenizer(text, add_special_tokens=False).input_ids) + 1
    # the rationale is the IDM's reading of the pair, the same whatever action is scored
    other = action_log_likelihoods(idm, sources, targets, ["remove it"] * 3, batch_size=None)
    assert [s.total for s in other] != pytest.approx([s.total for s in given])


def test_a_greedy_completion_that_ends_in_the_given_action_is_scored_without_a_forward(
    reasoning_idm, triplets, monkeypatch
):
    import wm_hub.inference.scoring as scoring

    idm = reasoning_idm
    sources, targets = [t.source for t in triplets], [t.target for t in triplets]
    actions = [t.action.text for t in triplets]
    rationales = [describe_changes(t.source_scene, t.target_scene) for t in triplets]
    forced = action_log_likelihoods(idm, sources, targets, actions, None, rationales)
    written = []  # what the IDM "wrote": each pair's rationale and action, but another action on row 1
    for source, target, action, rationale, score in zip(sources, targets, actions, rationales, forced):
        example = idm.build_idm_sequence(source, target, action, rationale)
        tokens = tuple(label for label in example.labels if label != IGNORE_INDEX)
        written.append(IDMOutput(action, rationale, tokens, tuple(p - 1.0 for p in score.token_log_probs)))
    written[1] = IDMOutput("remove it", rationales[1], written[1].token_ids, written[1].token_log_probs)
    monkeypatch.setattr(scoring, "generate_idm_outputs", lambda backbone, pairs: written[: len(pairs)])
    calls, forward = [], idm.model.forward
    monkeypatch.setattr(idm.model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    scores = action_log_likelihoods(idm, sources, targets, actions, batch_size=None)
    assert len(calls) == 1  # row 1 only, teacher-forced on the IDM's rationale with the given action
    assert scores[1].total == pytest.approx(forced[1].total, rel=1e-6)
    assert [scores[0].total, scores[2].total] == pytest.approx(
        [forced[0].total - forced[0].num_tokens, forced[2].total - forced[2].num_tokens]
    )


def test_without_rationale_scores_are_the_action_alone(tiny_backbones, triplets):
    idm = tiny_backbones("chameleon")
    assert not idm.writes_rationale
    sources, targets = [t.source for t in triplets], [t.target for t in triplets]
    actions = [t.action.text for t in triplets]
    scores = action_log_likelihoods(idm, sources, targets, actions, batch_size=None)
    ignored = action_log_likelihoods(idm, sources, targets, actions, None, ["row 1: x -> y"] * 3)
    assert [s.total for s in scores] == [s.total for s in ignored]
    assert [s.num_tokens for s in scores] == [
        len(idm.tokenizer(a, add_special_tokens=False).input_ids) + 1 for a in actions
    ]


def test_pretokenizing_for_a_reasoning_idm_names_a_row_without_rationale(reasoning_idm, triplets, tmp_path):
    rows = [
        make_triplet(
            t.id, t.source, t.target, t.action.text, "test", rationale=describe_changes(t.source_scene, t.target_scene)
        )
        for t in triplets
    ]
    rows[1]["rationale"] = None
    dataset = datasets.Dataset.from_list(rows, features=TRIPLET_FEATURES)
    config = PretokenizeConfig(task="idm", loss_weighting="none")
    with pytest.raises(ValueError, match=f"row '{triplets[1].id}' has no rationale"):
        pretokenize(dataset, reasoning_idm, config, cache_dir=tmp_path)
    encoded = pretokenize(dataset.select([0, 2]), reasoning_idm, config, cache_dir=tmp_path)
    expected = reasoning_idm.build_idm_sequence(
        triplets[2].source, triplets[2].target, triplets[2].action.text, rows[2]["rationale"]
    )
    assert encoded[1]["input_ids"] == expected.input_ids and encoded[1]["labels"] == expected.labels


def test_a_triplet_dataset_written_before_the_rationale_column_still_loads(triplets, tmp_path):
    features = datasets.Features({k: v for k, v in TRIPLET_FEATURES.items() if k != "rationale"})
    rows = [make_triplet(t.id, t.source, t.target, t.action.text, "old") for t in triplets]
    for row in rows:
        del row["rationale"]
    folder = tmp_path / "old-dataset"
    folder.mkdir()
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "train.parquet")
    loaded = build_mixture([SourceConfig(path=str(folder))], cache_dir=str(tmp_path / "cache")).train
    assert loaded.features == TRIPLET_FEATURES
    assert loaded["rationale"] == [None] * 3 and loaded["action"] == [t.action.text for t in triplets]


def test_the_fdm_reward_of_a_reasoning_idm_policy_reads_only_the_action(tiny_backbones, triplets):
    fdm = tiny_backbones("chameleon")
    source_ids = fdm.encode_images([t.source for t in triplets]).tolist()
    target_ids = fdm.encode_images([t.target for t in triplets]).tolist()
    actions = [t.action.text for t in triplets]
    columns = {"source_ids": source_ids, "target_ids": target_ids}
    plain = FDMTargetLikelihood(fdm, min_value=-1e9)([None] * 3, actions, [[]] * 3, **columns)
    reasoned = FDMTargetLikelihood(fdm, min_value=-1e9, policy_writes_rationale=True)(
        [None] * 3, [f"row 1, column 1: a -> b => {a}" for a in actions], [[]] * 3, **columns
    )
    assert reasoned == pytest.approx(plain)
    assert torch.tensor(plain).lt(0).all()
