"""Spatial reasoning: multiple-choice accuracy with greedy decoding (paper Table 2, SpatialMQA and EmbSpatial-Bench).

How a world-model backbone answers: the prompt is the image block followed by the question, the lettered choices
and an instruction to answer with the letter::

    [bos] [boi] image [eoi] "Question: <q>\\nOptions:\\nA. <c0>\\nB. <c1>\\n...\\nAnswer with the option's letter.\\n
    Answer:" [sep]

(``[sep]`` only for backbones whose format has a separator, as their IDM completions do). The answer is decoded
greedily (image tokens suppressed, at most ``max_new_tokens``) and parsed: the first standalone option letter
(``B``, ``(B)``, ``B.``), else the one choice whose text the reply contains. A reply that gives neither is
counted as unparsed and wrong. Accuracy = correct / all questions.

Input files are JSONL (one object per line) or a JSON list, in one of three layouts:

- ``plain``: ``{"id"?, "image", "question", "choices": [...], "answer", "category"?}``; ``answer`` is a letter,
  a 0-based index or the text of a choice.
- ``spatialmqa`` (SpatialMQA's released JSONL): ``{"image": "000000121362.jpg", "question", "options": [...],
  "answer": "<option text>"}`` (``id`` if present); images are COCO file names under ``image_dir``.
- ``embspatial`` (EmbSpatial-Bench's ``embspatial_bench.json``): ``{"question_id", "image", "question",
  "answer_options": [...], "answer": <0-based index>, "relation"}``; ``image`` is a base64 JPEG (as released)
  or a path; ``relation`` becomes the category.

Image paths are relative to ``image_dir`` (default: the data file's folder).

:func:`evaluate_spatial` runs the whole benchmark (``wm-hub eval spatial``): replies are appended to a predictions
JSONL as they are made (a rerun resumes, :mod:`wm_hub.evaluation.generation`) and the accuracy report is written to
``results.json``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from wm_hub.atomic_io import write_json
from wm_hub.data.pictures import image_problem
from wm_hub.evaluation.generation import GenerationEvalConfig, complete_predictions
from wm_hub.inference.generation import left_pad
from wm_hub.models.base import Backbone

FORMATS = ("plain", "spatialmqa", "embspatial")
LETTERS = string.ascii_uppercase
INSTRUCTION = "Answer with the option's letter."


@dataclass
class SpatialQuestion:
    """One multiple-choice question about an image.

    Attributes:
        id: Question id.
        image: A path, or the image itself (decoded base64).
        question: Question text.
        choices: Answer options.
        answer: 0-based index of the correct option.
        category: Relation or question type (accuracy is also reported per category).
    """

    id: str
    image: str | Image.Image
    question: str
    choices: list[str]
    answer: int
    category: str | None = None

    def load_image(self) -> Image.Image:
        """The image as an RGB PIL image."""
        if isinstance(self.image, Image.Image):
            return self.image.convert("RGB")
        with Image.open(self.image) as image:
            return image.convert("RGB")


@dataclass
class SpatialConfig:
    """Decoding settings.

    Args:
        batch_size: Questions per ``generate`` call.
        max_new_tokens: Longest reply in tokens.
    """

    batch_size: int = 8
    max_new_tokens: int = 8


@dataclass
class SpatialQuestionsConfig:
    """Which questions to ask (:func:`read_questions`).

    Args:
        data: Questions: a JSONL file or a JSON list.
        format: Layout of the rows: ``plain``, ``spatialmqa`` (SpatialMQA's JSONL) or ``embspatial``
            (EmbSpatial-Bench's JSON).
        image_dir: Folder image paths are relative to (default: the data file's).
    """

    data: str
    format: Literal["plain", "spatialmqa", "embspatial"] = "plain"
    image_dir: str | None = None

    def load(self) -> list[SpatialQuestion]:
        """The questions (see :func:`read_questions` for what may be raised)."""
        return read_questions(self.data, self.format, self.image_dir)


_FIELDS = {
    "plain": ("id", "image", "question", "choices", "answer", "category"),
    "spatialmqa": ("id", "image", "question", "options", "answer", None),
    "embspatial": ("question_id", "image", "question", "answer_options", "answer", "relation"),
}


def _records(path: Path) -> list[tuple[str, Any]]:
    """``(location, record)`` pairs of a JSONL file or a JSON list."""
    text = path.read_text()
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
        return [(f"{path} row {index}", record) for index, record in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((f"{path} line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            records.append((f"{path} line {number}", error))
    return records


def _decode_base64_image(text: str) -> Image.Image | None:
    try:
        data = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        return None


def _answer_index(answer: Any, choices: list[str]) -> int | None:
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return answer if 0 <= answer < len(choices) else None
    if isinstance(answer, str):
        text = answer.strip()
        if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
            return LETTERS.index(text.upper())
        matches = [i for i, choice in enumerate(choices) if choice.strip().lower() == text.lower()]
        return matches[0] if len(matches) == 1 else None
    return None


def read_questions(
    path: str | Path, format: str = "plain", image_dir: str | Path | None = None
) -> list[SpatialQuestion]:
    """Read multiple-choice questions in one of :data:`FORMATS` (see the module docstring).

    Args:
        path: JSONL file or JSON list.
        format: ``plain``, ``spatialmqa`` or ``embspatial``.
        image_dir: Folder image paths are relative to (default: the file's folder).

    Returns:
        The questions, in file order.

    Raises:
        ValueError: Any bad row (not JSON, a missing or mistyped field, an answer that is not one of the choices,
            a missing or unreadable image, a duplicate id); one error names every bad row, its line and field.
        FileNotFoundError: No such file.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown question format {format!r}; choose one of {list(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    id_field, image_field, question_field, choices_field, answer_field, category_field = _FIELDS[format]
    questions, errors, seen = [], [], set()
    for index, (where, record) in enumerate(_records(path)):
        if isinstance(record, json.JSONDecodeError):
            errors.append(f"{where}: not valid JSON ({record})")
            continue
        if not isinstance(record, dict):
            errors.append(f"{where}: expected an object, got {type(record).__name__}")
            continue
        missing = [name for name in (image_field, question_field, choices_field, answer_field) if name not in record]
        if missing:
            errors.append(f"{where}: missing field(s) {missing} (format {format})")
            continue
        question, choices = record[question_field], record[choices_field]
        if not isinstance(question, str) or not question.strip():
            errors.append(f"{where}, field {question_field!r}: expected a non-empty string")
            continue
        if (
            not isinstance(choices, list)
            or not 2 <= len(choices) <= len(LETTERS)
            or not all(isinstance(choice, str) for choice in choices)
        ):
            errors.append(f"{where}, field {choices_field!r}: expected a list of 2 to 26 strings")
            continue
        answer = _answer_index(record[answer_field], choices)
        if answer is None:
            errors.append(
                f"{where}, field {answer_field!r}: {record[answer_field]!r} is not one of the {len(choices)} choices"
            )
            continue
        image_value = record[image_field]
        if not isinstance(image_value, str) or not image_value:
            errors.append(f"{where}, field {image_field!r}: expected a path or a base64 image")
            continue
        image: str | Image.Image
        image_path = image_dir / image_value
        problem = image_problem(image_path) if len(image_value) < 1024 else "no such file"  # base64: no path
        if problem is None:
            image = str(image_path)
        elif format == "embspatial" and (decoded := _decode_base64_image(image_value)) is not None:
            image = decoded
        else:
            shown = image_value if len(image_value) < 200 else image_value[:40] + "..."
            problem = f"no such file under {image_dir}" if problem == "no such file" else problem
            errors.append(f"{where}, field {image_field!r}: {shown}: {problem}")
            continue
        row_id = str(record.get(id_field, index)) if id_field else str(index)
        if row_id in seen:
            errors.append(f"{where}, field {id_field!r}: duplicate id {row_id!r}")
            continue
        seen.add(row_id)
        category = record.get(category_field) if category_field else None
        questions.append(SpatialQuestion(row_id, image, question.strip(), choices, answer, category))
    if errors:
        raise ValueError(f"{path}: {len(errors)} bad question row(s):\n  " + "\n  ".join(errors))
    if not questions:
        raise ValueError(f"{path}: no questions")
    return questions


def prompt_text(question: str, choices: Sequence[str]) -> str:
    """The text after the image: question, lettered options, instruction."""
    options = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))
    return f"Question: {question}\nOptions:\n{options}\n{INSTRUCTION}\nAnswer:"


def build_prompt(backbone: Backbone, image_ids: Sequence[int], question: str, choices: Sequence[str]) -> list[int]:
    """Token ids of the prompt: ``[bos] image-block text [sep]`` (see the module docstring)."""
    ids = [backbone.bos_token_id, *backbone.image_prefix_ids(), *backbone.image_body_ids(list(image_ids))]
    ids += backbone.image_suffix_ids()
    ids += backbone.processor.text_ids(prompt_text(question, choices))
    if backbone.separator_token_id is not None:
        ids.append(backbone.separator_token_id)
    return ids


_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z])")


def parse_answer(reply: str, choices: Sequence[str]) -> int | None:
    """The option a reply picks: its first standalone option letter, else the one choice it names, else ``None``."""
    for match in _LETTER.finditer(reply):
        letter = match.group(1)
        if letter in LETTERS[: len(choices)]:
            return LETTERS.index(letter)
    lowered = reply.lower()
    named = [i for i, choice in enumerate(choices) if choice.strip() and choice.strip().lower() in lowered]
    return named[0] if len(named) == 1 else None


@torch.no_grad()
def answer_questions(
    backbone: Backbone, questions: Sequence[SpatialQuestion], config: SpatialConfig | None = None
) -> list[dict[str, Any]]:
    """Greedy replies to the questions, batched, with the parsed choice.

    Returns:
        One dict per question: ``id``, ``category``, ``answer`` (letter), ``reply``, ``parsed`` (letter or
        ``None``), ``correct``.
    """
    config = config or SpatialConfig()
    rows = []
    for start in tqdm(range(0, len(questions), config.batch_size), desc="spatial questions", unit="batch"):
        batch = questions[start : start + config.batch_size]
        image_ids = backbone.encode_images([question.load_image() for question in batch])
        prompts = [build_prompt(backbone, ids.tolist(), q.question, q.choices) for ids, q in zip(image_ids, batch)]
        input_ids, attention_mask = left_pad(prompts, backbone.pad_token_id)
        output = backbone.model.generate(
            input_ids=input_ids.to(backbone.device),
            attention_mask=attention_mask.to(backbone.device),
            do_sample=False,
            max_new_tokens=config.max_new_tokens,
            eos_token_id=backbone.eos_token_id,
            pad_token_id=backbone.pad_token_id,
            suppress_tokens=backbone.image_token_ids.tolist(),
        )
        replies = backbone.tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
        for question, reply in zip(batch, replies):
            parsed = parse_answer(reply, question.choices)
            rows.append(
                {
                    "id": question.id,
                    "category": question.category,
                    "answer": LETTERS[question.answer],
                    "reply": reply,
                    "parsed": None if parsed is None else LETTERS[parsed],
                    "correct": parsed == question.answer,
                }
            )
    return rows


def accuracy_report(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (%) overall and per category, and the number of unparsed replies."""
    if not rows:
        raise ValueError("no answered questions")

    def summary(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
        correct = sum(bool(row["correct"]) for row in group)
        unparsed = sum(row["parsed"] is None for row in group)
        return {"accuracy": 100.0 * correct / len(group), "correct": correct, "n": len(group), "unparsed": unparsed}

    categories = sorted({row["category"] for row in rows if row["category"] is not None})
    return {
        **summary(rows),
        "categories": {name: summary([row for row in rows if row["category"] == name]) for name in categories},
    }


def evaluate_spatial(config: GenerationEvalConfig, questions: SpatialQuestionsConfig) -> dict[str, Any]:
    """Answer the questions not answered yet, report the accuracy over all of them and write ``config.out``.

    Returns:
        The results (:func:`accuracy_report`, the predictions file and the settings), as written to ``config.out``.

    Raises:
        ValueError: Bad question rows (all named), or a predictions file this run did not write.
        FileNotFoundError: No such questions file.
    """
    from wm_hub.models.loading import load_backbone

    config.check_apart_from("--data", questions.data)
    config.check_apart_from("--image-dir", questions.image_dir)
    asked = questions.load()[: config.limit]
    decoding = SpatialConfig(
        batch_size=config.batch_size, max_new_tokens=config.max_new_tokens or SpatialConfig.max_new_tokens
    )
    rows = complete_predictions(
        config.predictions_path,
        [question.id for question in asked],
        config.batch_size,
        lambda: load_backbone(config.model, device=config.device, dtype=config.dtype),
        lambda backbone, indices: answer_questions(backbone, [asked[index] for index in indices], decoding),
        desc="spatial questions",
    )
    results = {
        **accuracy_report(rows),
        "predictions": str(config.predictions_path),
        "config": {
            "model": config.model,
            "data": questions.data,
            "format": questions.format,
            "decoding": "greedy",
            "max_new_tokens": decoding.max_new_tokens,
        },
    }
    write_json(config.out, results)
    return results
