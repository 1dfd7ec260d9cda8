"""The trajectory-preference probe: negatives as defined, scores equal direct computations, a model whose answer
is known, counterfactuals from AURORA's disc_edit_data, and ``wm-hub probe`` on real AURORA-BENCH samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from shared_data import require

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH_MINI = SHARED_DATA / "aurora-bench-mini"

DISC_DATA = SHARED_DATA / "aurora-train-annotations" / "disc_edit_data"
IDS = ["a0", "a1", "a2", "b0", "b1", "c0"]
SUBSETS = ["a", "a", "a", "b", "b", "c"]
ACTIONS = ["open the door", "Open the door.", "close it", "move left", "move right", "paint it red"]
TARGET_KEYS = ["t0", "t1", "t1", "t3", "t4", "t5"]


def test_negatives_constructed_as_defined():
    from wm_hub.evaluation.probe import build_probe_rows

    counterfactuals = {"a0": "close the door", "b1": "move left"}
    rows = build_probe_rows(IDS, SUBSETS, ACTIONS, TARGET_KEYS, seed=3, counterfactuals=counterfactuals)
    assert rows == build_probe_rows(IDS, SUBSETS, ACTIONS, TARGET_KEYS, seed=3, counterfactuals=counterfactuals)
    for i, row in enumerate(rows):
        source, target = 2 * i, 2 * i + 1
        assert (row.id, row.subset) == (IDS[i], SUBSETS[i])
        assert (row.reference.source, row.reference.action, row.reference.target) == (source, ACTIONS[i], target)
        negatives = row.negatives
        assert (negatives["copy"].source, negatives["copy"].action, negatives["copy"].target) == (
            source,
            ACTIONS[i],
            source,
        )
        assert (negatives["inverse"].source, negatives["inverse"].target) == (target, source)
        assert negatives["inverse"].action == ACTIONS[i]
        same_subset = [j for j in range(len(IDS)) if SUBSETS[j] == SUBSETS[i] and j != i]
        if "random_action" in negatives:
            other = negatives["random_action"]
            assert (other.source, other.target) == (source, target)
            donors = [j for j in same_subset if ACTIONS[j] == other.action]
            assert donors and other.action.lower().rstrip(".") != ACTIONS[i].lower().rstrip(".")
        if "random_target" in negatives:
            other = negatives["random_target"]
            assert (other.source, other.action) == (source, ACTIONS[i])
            donor = (other.target - 1) // 2
            assert other.target % 2 == 1 and donor in same_subset and TARGET_KEYS[donor] != TARGET_KEYS[i]
        if IDS[i] in counterfactuals:
            other = negatives["counterfactual"]
            assert (other.source, other.action, other.target) == (source, counterfactuals[IDS[i]], target)
        else:
            assert "counterfactual" not in negatives
    by_id = {row.id: row for row in rows}
    # a0 and a1 share an action (case and full stop aside): a0's only random action is a2's
    assert by_id["a0"].negatives["random_action"].action == "close it"
    # a1 and a2 share a target image: a1's only random target is a0's
    assert by_id["a1"].negatives["random_target"].target == 1
    # a subset of one row has no random negatives, but still copy and inverse
    assert set(by_id["c0"].negatives) == {"copy", "inverse"}
    # seeded per row: other rows do not change a row's draws
    alone = build_probe_rows(IDS[3:5], SUBSETS[3:5], ACTIONS[3:5], TARGET_KEYS[3:5], seed=3)
    assert alone[0].negatives["random_action"].action == by_id["b0"].negatives["random_action"].action


@pytest.fixture(scope="module")
def shapes_triplets():
    from wm_hub.data.shapes_world import ShapesWorld, WorldConfig

    world = ShapesWorld(WorldConfig())
    return [world.triplet("test", index) for index in range(4)]


@pytest.mark.parametrize("arch", ["chameleon", "liquid"])
def test_probe_scores_equal_direct_computations(tiny_backbones, shapes_triplets, arch):
    from wm_hub.evaluation.probe import ProbeConfig, run_probe
    from wm_hub.inference.scoring import action_log_likelihoods, target_log_likelihoods

    backbone = tiny_backbones(arch)
    sources = [t.source for t in shapes_triplets]
    targets = [t.target for t in shapes_triplets]
    actions = [t.action.text for t in shapes_triplets]
    ids, subsets = ["r0", "r1", "r2", "r3"], ["x", "x", "y", "y"]
    result = run_probe(backbone, ids, subsets, sources, actions, targets, ProbeConfig(batch_size=5))
    image_ids = backbone.encode_images([image for pair in zip(sources, targets) for image in pair])
    for direction in ("forward", "inverse"):
        expected_wins: dict[str, list[bool]] = {}
        named = [
            (row, name, t) for row in result.rows for name, t in (("reference", row.reference), *row.negatives.items())
        ]
        src = [image_ids[t.source] for _, _, t in named]
        tgt = [image_ids[t.target] for _, _, t in named]
        acts = [t.action for _, _, t in named]
        if direction == "forward":
            direct = target_log_likelihoods(backbone, src, acts, tgt, batch_size=None)
        else:
            direct = action_log_likelihoods(backbone, src, tgt, acts, batch_size=None)
        by_row: dict[str, dict[str, float]] = {}
        for (row, name, _), score in zip(named, direct):
            assert result.scores[direction][row.id][name] == pytest.approx(score.total, rel=1e-4, abs=1e-3)
            by_row.setdefault(row.id, {})[name] = score.total
        for row in result.rows:  # win rates by hand from the direct scores
            for name in row.negatives:
                scores = by_row[row.id]
                expected_wins.setdefault(name, []).append(scores["reference"] > scores[name])
        for name, wins in expected_wins.items():
            stats = result.win_rates[direction][name]["all"]
            assert stats["n"] == len(wins) == 4
            assert stats["win_rate"] == pytest.approx(100 * sum(wins) / 4)
            assert 0 <= stats["win_rate"] <= 100
            per_subset = result.win_rates[direction][name]
            assert per_subset["x"]["wins"] + per_subset["y"]["wins"] == sum(wins)


def test_probe_known_answer_uniform_model(tiny_model_dirs, shapes_triplets, tmp_path):
    """A model with a zero output layer gives every token probability 1/V: all image scores tie (the reference
    never wins forward), and in the inverse direction the reference wins exactly when its action is shorter."""
    from wm_hub import load_backbone
    from wm_hub.evaluation.probe import ProbeConfig, run_probe

    backbone = load_backbone(str(tiny_model_dirs("chameleon")))
    torch.nn.init.zeros_(backbone.model.lm_head.weight)
    sources = [t.source for t in shapes_triplets]
    targets = [t.target for t in shapes_triplets]
    actions = ["go", "move the cyan circle up by three cells", "paint it", "paint the red cross yellow please"]
    ids = ["r0", "r1", "r2", "r3"]
    cache = tmp_path / "scores.jsonl"
    result = run_probe(backbone, ids, ["x"] * 4, sources, actions, targets, ProbeConfig(), score_cache=cache)
    vocab = backbone.model.config.vocab_size
    length = {action: len(backbone.tokenizer(action, add_special_tokens=False)["input_ids"]) for action in actions}
    for row in result.rows:
        inverse = result.scores["inverse"][row.id]
        assert inverse["reference"] == pytest.approx(-(length[row.reference.action] + 1) * math.log(vocab), rel=1e-5)
    forward = result.win_rates["forward"]
    assert {name: stats["all"]["win_rate"] for name, stats in forward.items()} == {
        "random_action": 0.0,
        "random_target": 0.0,
        "copy": 0.0,
        "inverse": 0.0,
    }
    assert all(stats["all"]["ties"] == 4 for stats in forward.values())
    inverse = result.win_rates["inverse"]
    shorter = [length[row.reference.action] < length[row.negatives["random_action"].action] for row in result.rows]
    assert 0 < sum(shorter) < 4  # the case tells wins from losses
    assert inverse["random_action"]["all"]["wins"] == sum(shorter)
    assert inverse["copy"]["all"]["win_rate"] == inverse["inverse"]["all"]["win_rate"] == 0.0

    # rerun: every score is served from the cache (a model that would score differently is not used)
    lines = cache.read_text()
    torch.nn.init.normal_(backbone.model.lm_head.weight)
    again = run_probe(backbone, ids, ["x"] * 4, sources, actions, targets, ProbeConfig(), score_cache=cache)
    assert again.scores == result.scores and cache.read_text() == lines
    with cache.open("a") as handle:
        handle.write('{"key": "cut sho')  # a crash mid-line: dropped on the next read, never a parse error
    assert run_probe(backbone, ids, ["x"] * 4, sources, actions, targets, ProbeConfig(), score_cache=cache).scores
    assert cache.read_text() == lines


def test_counterfactuals_from_disc_edit_data(tmp_path):
    from wm_hub.evaluation.probe import load_counterfactuals, match_counterfactuals
    from wm_hub.evaluation.triplet_sources import load_eval_triplets

    require(DISC_DATA, BENCH_MINI)
    triplets = load_eval_triplets(str(BENCH_MINI), subsets=["ag", "something", "whatsup"], skip_missing=True)
    ids, actions = triplets.dataset["id"], triplets.dataset["action"]
    disc = load_counterfactuals(DISC_DATA, ["ag", "something", "whatsup"])
    matched = match_counterfactuals(ids, triplets.subsets(), actions, disc, triplets.image_paths)
    assert matched["ag/6"] == "Make her open the door"  # disc row: prompt (true) + pos (the opposite)
    assert matched["something/12"] == "Make remote stand up"  # disc path frames_validation_2K/36/first.jpg
    assert matched["whatsup/24"] == "Move the dragonfruit on the table"  # image-text row: pos true, neg wrong
    assert "something/16" in matched and len([i for i in matched if i.startswith("ag/")]) == 6
    # without image paths a match needs exactly one disc row with that action
    assert match_counterfactuals(["x"], ["ag"], ["Make her close the door"], disc) == {"x": "Make her open the door"}

    bad = tmp_path / "disc" / "ag"
    bad.mkdir(parents=True)
    (bad / "valid.json").write_text(json.dumps([{"prompt": "a", "pos": "b"}, {"input": "x.png", "neg": "c"}]))
    with pytest.raises(ValueError, match=r"valid.json: row 1 has neither 'prompt' nor 'pos'"):
        load_counterfactuals(tmp_path / "disc")


def test_probe_cli_on_aurora_bench_mini(tiny_model_dirs, tmp_path, capsys):
    from wm_hub.cli import main

    require(BENCH_MINI)
    out = tmp_path / "probe"
    args = ["probe", "--model", str(tiny_model_dirs("emu3")), "--data", str(BENCH_MINI), "--subsets", "something"]
    with pytest.raises(SystemExit, match=r"something/17\), field 'output': data/something/images/214831/last.jpg"):
        main([*args, "--out", str(out)])
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(SystemExit, match=r"notes.txt is a file, not a model folder"):  # was an OSError traceback
        main(["probe", "--model", str(a_file), "--data", str(BENCH_MINI), "--skip-missing", "--out", str(out)])
    with pytest.raises(SystemExit, match=r"no-such-data: no such file or folder here, and not a dataset on the Hub"):
        main([*args[:3], "--data", str(tmp_path / "no-such-data"), "--out", str(out)])  # offline: was a traceback
    with pytest.raises(SystemExit, match=r"--negatives counterfactual needs --disc-data .*: none given"):
        main([*args, "--skip-missing", "--negatives", "counterfactual", "--out", str(out)])  # failed after scoring
    assert not out.exists()
    args += ["--skip-missing", "--out", str(out)]
    if DISC_DATA.is_dir():
        args += ["--disc-data", str(DISC_DATA)]
    assert main(args) == 0
    summary = json.loads((out / "probe.json").read_text())
    assert [bad["id"] for bad in summary["skipped"]] == ["something/17"]
    assert summary["rows"] == 5 and summary["subsets"] == ["something"]
    for direction in ("forward", "inverse"):
        for by_subset in summary["win_rates"][direction].values():
            assert 0 <= by_subset["all"]["win_rate"] <= 100 and by_subset["all"] == by_subset["something"]
    if DISC_DATA.is_dir():
        assert summary["win_rates"]["inverse"]["counterfactual"]["all"]["n"] == summary["counterfactual_rows"] == 4
    rows = [json.loads(line) for line in (out / "probe_rows.jsonl").read_text().splitlines()]
    assert rows[0]["negatives"]["copy"] == {
        "source": f"{rows[0]['id']}:source",
        "action": rows[0]["reference"]["action"],
        "target": f"{rows[0]['id']}:source",
    }
    assert "| something |" in (out / "probe.md").read_text()
    for name in ("probe_scatter.png", "probe_hist.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    """A tiny random LLaVA (CLIP vision tower, Llama LM, byte tokenizer with a chat template): an understanding-only
    VLM as transformers ships them."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from wm_hub.models.tiny import build_byte_tokenizer

    root = tmp_path_factory.mktemp("llava")
    torch.manual_seed(0)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<image>"]
    tokenizer = build_byte_tokenizer(specials, specials, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>")
    template = (
        "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}</s>{% endfor %}{% if add_generation_prompt %}assistant: "
        "{% endif %}"
    )
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32)
    text = dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32)
    text.update(num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    config = LlavaConfig(
        vision_config={**vision, "patch_size": 8, "model_type": "clip_vision_model"},
        text_config={**text, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},
        image_token_id=4,
    )
    LlavaForConditionalGeneration(config).save_pretrained(root)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=8,
        chat_template=template,
        num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
    ).save_pretrained(root)
    return root


def test_an_understanding_only_vlm_is_probed_in_the_inverse_direction(tiny_llava, shapes_triplets, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from wm_hub.evaluation.probe import ProbeConfig, run_probe
    from wm_hub.evaluation.vlm_scoring import IDM_QUESTION, ChatVLMScorer

    scorer = ChatVLMScorer(str(tiny_llava))
    triplet = shapes_triplets[0]
    [score] = scorer.action_log_likelihoods([triplet.source], [triplet.target], [triplet.action.text])

    # the same number from transformers directly: the reply's tokens after the generation prompt
    processor, model = (
        AutoProcessor.from_pretrained(tiny_llava),
        AutoModelForImageTextToText.from_pretrained(tiny_llava),
    )
    user = {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": IDM_QUESTION}]}
    reply = {"role": "assistant", "content": [{"type": "text", "text": triplet.action.text}]}
    pair = [triplet.source.convert("RGB"), triplet.target.convert("RGB")]
    prompt = processor(images=pair, text=[processor.apply_chat_template([user], add_generation_prompt=True)])
    full = processor(images=pair, text=[processor.apply_chat_template([user, reply])], return_tensors="pt")
    log_probs = model(**full).logits[0, :-1].log_softmax(-1)
    ids = full["input_ids"][0]
    start = len(prompt["input_ids"][0])
    expected = sum(float(log_probs[i - 1, ids[i]]) for i in range(start, len(ids)))
    assert score.num_tokens == len(ids) - start == len(triplet.action.text.encode()) + 1  # bytes + </s>
    assert score.total == pytest.approx(expected, abs=1e-4)

    ids = [f"t{i}" for i in range(4)]
    sources, targets = [t.source for t in shapes_triplets], [t.target for t in shapes_triplets]
    actions = [t.action.text for t in shapes_triplets]
    alone = [
        scorer.action_log_likelihoods(sources[i : i + 1], targets[i : i + 1], actions[i : i + 1])[0] for i in range(4)
    ]
    for side in ("right", "left"):  # a batch of replies of several lengths, padded on either side
        scorer.processor.tokenizer.padding_side = side
        batched = scorer.action_log_likelihoods(sources, targets, actions, batch_size=4)
        assert [s.total for s in batched] == pytest.approx([s.total for s in alone], abs=1e-4), side
    inverse = ProbeConfig(directions=["inverse"], negatives=["random_action", "copy"], batch_size=3)
    result = run_probe(scorer, ids, ["s"] * 4, sources, actions, targets, inverse)
    assert set(result.scores) == {"inverse"} and result.scores["inverse"]["t0"]["reference"] == pytest.approx(
        score.total, abs=1e-4
    )
    with pytest.raises(ValueError, match="cannot score images"):
        run_probe(scorer, ids, ["s"] * 4, sources, actions, targets, ProbeConfig())


def test_probe_cli_probes_a_vlm(tiny_llava, tmp_path):
    from wm_hub.cli import main

    require(BENCH_MINI)
    out = tmp_path / "vlm"
    args = ["probe", "--model", str(tiny_llava), "--vlm", "true", "--data", str(BENCH_MINI), "--subsets", "ag"]
    assert main([*args, "--limit", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "probe.json").read_text())
    assert list(summary["win_rates"]) == ["inverse"] and summary["rows"] == 3
