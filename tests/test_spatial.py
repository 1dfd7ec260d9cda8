"""Spatial reasoning: the three question layouts, bad rows named, answer parsing, accuracy of a model whose reply
is known, and ``wm-hub eval spatial`` end to end."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from wm_hub.data.shapes_world import ShapesWorld, WorldConfig

    folder = tmp_path_factory.mktemp("spatial-images")
    world = ShapesWorld(WorldConfig())
    for index in range(3):
        world.triplet("test", index).source.save(folder / f"scene{index}.png")
    return folder


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


QUESTIONS = [
    {"image": "scene0.png", "question": "Where is the circle?", "choices": ["left", "right"], "answer": "B"},
    {"image": "scene1.png", "question": "Is the cross above?", "choices": ["yes", "no", "unsure"], "answer": 0},
    {"image": "scene2.png", "question": "Which is closer?", "choices": ["cup", "door"], "answer": "door"},
    {"image": "scene0.png", "question": "Where is it?", "choices": ["up", "down", "left"], "answer": "b", "id": "q4"},
]


def test_read_questions_formats(image_dir, tmp_path):
    from PIL import Image

    from wm_hub.evaluation.spatial import read_questions

    plain = read_questions(_write_jsonl(image_dir / "plain.jsonl", QUESTIONS))
    assert [q.answer for q in plain] == [1, 0, 1, 1]
    assert [q.id for q in plain] == ["0", "1", "2", "q4"]
    assert plain[0].load_image().size == (64, 64)

    smqa = [
        {"image": "scene1.png", "question": "Where is the dog?", "options": ["behind", "left of"], "answer": "left of"}
    ]
    (question,) = read_questions(_write_jsonl(tmp_path / "smqa.jsonl", smqa), "spatialmqa", image_dir)
    assert (question.answer, question.choices, question.category) == (1, ["behind", "left of"], None)

    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 10, 10)).save(buffer, format="JPEG")
    emb = {
        "question_id": "mp3d_8",
        "image": base64.b64encode(buffer.getvalue()).decode(),
        "question": "Which object is above the sofa?",
        "answer_options": ["lamp", "table", "rug", "chair"],
        "answer": 2,
        "relation": "above",
    }
    path = tmp_path / "embspatial_bench.json"
    path.write_text(json.dumps([emb]))
    (question,) = read_questions(path, "embspatial")
    assert (question.id, question.answer, question.category) == ("mp3d_8", 2, "above")
    assert question.load_image().size == (20, 10)


def test_bad_rows_named(image_dir, tmp_path):
    from wm_hub.evaluation.spatial import read_questions

    rows = [
        QUESTIONS[0],
        {"image": "scene0.png", "question": "Where?", "choices": ["a", "b"]},
        {"image": "scene0.png", "question": "Where?", "choices": ["a", "b"], "answer": "C"},
        {"image": "missing.png", "question": "Where?", "choices": ["a", "b"], "answer": 1},
    ]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    (image_dir / "truncated.png").write_bytes((image_dir / "scene0.png").read_bytes()[:80])
    with path.open("a") as handle:
        handle.write("{not json\n")
        row = {"image": "truncated.png", "question": "Where?", "choices": ["a", "b"], "answer": 1}
        handle.write(json.dumps(row) + "\n")
    with pytest.raises(ValueError) as error:
        read_questions(path, image_dir=image_dir)
    message = str(error.value)
    assert "5 bad question row(s)" in message
    assert "bad.jsonl line 2: missing field(s) ['answer']" in message
    assert "bad.jsonl line 3, field 'answer': 'C' is not one of the 2 choices" in message
    assert "bad.jsonl line 4, field 'image': missing.png: no such file" in message
    assert "bad.jsonl line 5: not valid JSON" in message
    assert "bad.jsonl line 6, field 'image': truncated.png: unreadable (image file is truncated" in message
    assert "bad.jsonl line 1" not in message


def test_parse_answer():
    from wm_hub.evaluation.spatial import parse_answer

    choices = ["left of", "right of", "behind"]
    assert parse_answer("B", choices) == 1
    assert parse_answer(" (C) behind", choices) == 2
    assert parse_answer("A. left of", choices) == 0
    assert parse_answer("Answer: the object is right of it", choices) == 1  # no letter: the one choice named
    assert parse_answer("D", choices) is None  # not an option
    assert parse_answer("BBBB", choices) is None
    assert parse_answer("left of or right of", choices) is None


def test_accuracy_of_a_model_that_always_answers_b(tiny_model_dirs, image_dir):
    """An output layer that always prefers the token "B": every parsed answer is B, so accuracy is the share of
    questions whose answer is B (2 of 4 here)."""
    from wm_hub import load_backbone
    from wm_hub.evaluation.spatial import (
        SpatialConfig,
        accuracy_report,
        answer_questions,
        build_prompt,
        prompt_text,
        read_questions,
    )

    backbone = load_backbone(str(tiny_model_dirs("chameleon")))
    b_token = backbone.tokenizer.convert_tokens_to_ids("B")
    head = backbone.model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    torch.nn.init.zeros_(biased.weight)
    torch.nn.init.zeros_(biased.bias)
    biased.bias.data[b_token] = 10.0
    backbone.model.lm_head = biased

    questions = read_questions(_write_jsonl(image_dir / "known.jsonl", QUESTIONS))
    prompt = build_prompt(backbone, [5] * backbone.image_seq_len, "Q?", ["x", "y"])
    text_ids = backbone.tokenizer(prompt_text("Q?", ["x", "y"]), add_special_tokens=False)["input_ids"]
    sep = backbone.separator_token_id
    body = prompt[:-1] if sep is not None else prompt
    assert sep is None or prompt[-1] == sep
    assert prompt[0] == backbone.bos_token_id and body[-len(text_ids) :] == text_ids
    assert "A. x\nB. y\nAnswer with the option's letter.\nAnswer:" in prompt_text("Q?", ["x", "y"])

    rows = answer_questions(backbone, questions, SpatialConfig(batch_size=3, max_new_tokens=1))
    assert [row["reply"] for row in rows] == ["B"] * 4
    assert [row["correct"] for row in rows] == [True, False, True, True]
    report = accuracy_report(rows)
    assert (report["accuracy"], report["correct"], report["n"], report["unparsed"]) == (75.0, 3, 4, 0)


def test_eval_spatial_cli(tiny_model_dirs, image_dir, tmp_path):
    from wm_hub.cli import main
    from wm_hub.evaluation.spatial import parse_answer

    rows = [dict(row, category="near" if index % 2 else "far") for index, row in enumerate(QUESTIONS)]
    data = _write_jsonl(image_dir / "cli.jsonl", rows)
    out = tmp_path / "spatial.json"
    args = ["eval", "spatial", "--data", str(data), "--out", str(out)]
    assert main([*args, "--model", str(tiny_model_dirs("liquid")), "--max-new-tokens", "4"]) == 0
    results = json.loads(out.read_text())
    replies = [json.loads(line) for line in open(results["predictions"])]
    assert [reply["id"] for reply in replies] == ["0", "1", "2", "q4"]
    letters = [["B", "A", "B", "B"][i] for i in range(4)]
    choices = [row["choices"] for row in rows]
    parsed = [parse_answer(reply["reply"], options) for reply, options in zip(replies, choices)]
    correct = sum(p is not None and "ABC"[p] == letter for p, letter in zip(parsed, letters))
    assert results["correct"] == correct and results["n"] == 4
    assert results["accuracy"] == pytest.approx(100 * correct / 4)
    assert results["unparsed"] == sum(p is None for p in parsed)
    assert set(results["categories"]) == {"far", "near"}
    assert sum(group["n"] for group in results["categories"].values()) == 4

    # a rerun resumes: the model is not loaded again
    assert main([*args, "--model", str(tmp_path / "no-such-model")]) == 0
    with pytest.raises(SystemExit, match="field 'choices': expected a list of 2 to 26 strings"):
        bad = _write_jsonl(tmp_path / "bad.jsonl", [dict(QUESTIONS[0], choices=["only one"])])
        main(["eval", "spatial", "--model", "m", "--data", str(bad), "--image-dir", str(image_dir), "--out", "x.json"])


@pytest.mark.parametrize("benchmark", ["spatial", "idm"])
def test_eval_generation_arguments_are_checked_before_any_loading(tmp_path, benchmark):
    from wm_hub.cli import main

    fdm = tmp_path / "an-fdm"
    fdm.mkdir()
    (fdm / "training_run.json").write_text(json.dumps({"task": "fdm"}))
    out = tmp_path / "r.json"
    base = ["eval", benchmark, "--model", str(tmp_path / "never-loaded"), "--data", str(tmp_path / "nothing"),
            "--out", str(out)]  # fmt: skip
    cases = [
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--max-new-tokens", "-1"], "--max-new-tokens must be >= 1"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--predictions", str(out)], "--predictions and --out are both"),
    ]
    if benchmark == "idm":
        cases.append((["--model", str(fdm)], "fine-tuned as an FDM"))
    for extra, message in cases:
        with pytest.raises(SystemExit, match=message):
            main([*base, *extra])
    with pytest.raises(SystemExit, match="is a folder: give the results JSON file"):
        main([*base[:-1], str(tmp_path)])
    assert not out.exists()
    data = tmp_path / "bench"  # results or predictions written over the data would replace it
    data.mkdir()
    (data / "test.json").write_text("[]")
    questions = tmp_path / "questions.jsonl"
    questions.write_text("{}\n")
    given = data if benchmark == "idm" else questions
    over = data / "test.json" if benchmark == "idm" else questions
    for extra, flag in ((["--out", str(over)], "--out"), (["--predictions", str(over)], "--predictions")):
        argv = [*base[:4], "--data", str(given), "--out", str(out), *extra]
        with pytest.raises(SystemExit, match=f"{flag} .* would write over --data .*: write it elsewhere"):
            main(argv)
    assert (data / "test.json").read_text() == "[]" and questions.read_text() == "{}\n"
    from wm_hub.evaluation.generation import GenerationEvalConfig

    beside = GenerationEvalConfig(model="m", out=str(data / "results" / "idm.json"))  # results of their own: fine
    beside.check_apart_from("--data", data)
    beside.check_apart_from("--image-dir", tmp_path)
    with pytest.raises(ValueError, match=r"--out .*data/x.png would write over --image-dir"):
        GenerationEvalConfig(model="m", out=str(data / "data" / "x.png")).check_apart_from("--image-dir", data)
