"""GPT-4o-as-judge end to end: the real ``openai`` client against the local OpenAI-compatible server.

Covers what the paper's metric needs (appendix F): the prompt and both images in one request at temperature 0,
robust reply parsing with unparsable replies counted and excluded, per-row min and the means, the on-disk cache
(a rerun sends nothing), the client's retries on 429/500, bounded concurrency, usage sums and no key on disk.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from openai_server import Reply, instruction_of, openai_server_fixture  # noqa: F401
from PIL import Image

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.evaluation.judge import (
    JudgeConfig,
    JudgeRequest,
    JudgeRequestError,
    parse_reply,
    render_prompt,
    summarize,
)
from wm_hub.evaluation.judge import judge_rows as run_judge


def judge_rows(*args, **kwargs):
    return run_judge(*args, progress=False, **kwargs)


@pytest.fixture(scope="module")
def requests() -> list[JudgeRequest]:
    """Eight shapes-world rows: source, action, and the true target as the prediction."""
    world = ShapesWorld(WorldConfig(image_size=64, grid=4))
    rows = []
    for index in range(8):
        example = world.triplet("test", index)
        rows.append(JudgeRequest(example.id, example.action.text, example.source, example.target))
    assert len({row.instruction for row in rows}) == len(rows)
    return rows


def config(server, tmp_path: Path | None = None, **overrides) -> JudgeConfig:
    cache_dir = str(tmp_path / "cache") if tmp_path is not None else None
    return JudgeConfig(model="gpt-4o-2024-11-20", base_url=server.base_url, cache_dir=cache_dir, **overrides)


def decode_data_url(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


# ----------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": [8, 6], "reasoning": "moved"}', (8.0, 6.0)),
        ('```json\n{"score": [3, 10], "reasoning": "partly"}\n```', (3.0, 10.0)),
        ('Here is my evaluation:\n{"score": [5, 7], "reasoning": "ok"}\nThanks.', (5.0, 7.0)),
        ("{'score': [2, 9], 'reasoning': 'Python dict'}", (2.0, 9.0)),
        ('{"score": ["4", "8.5"], "reasoning": "strings"}', (4.0, 8.5)),
        ('{"score": "[6, 7]", "reasoning": "list as a string"}', (6.0, 7.0)),
        ('{"score": ["9/10", "1/10"], "reasoning": "out of ten"}', (9.0, 1.0)),
        ('{"score": [7, 7], "reasoning": "the "red" cube moved"}', (7.0, 7.0)),
        ('{"Score": [0, 10]}', (0.0, 10.0)),
        ('{"result": {"score": [1, 2], "reasoning": "nested"}}', (1.0, 2.0)),
        ('Format: {"score": [...], "reasoning": "..."}\nAnswer: {"score": [4, 4], "reasoning": "x"}', (4.0, 4.0)),
        ('{"score": [8, 6], "reasoning": "paper figure"}]}', (8.0, 6.0)),
    ],
)
def test_parse_reply_accepts_variants(reply, expected):
    parsed = parse_reply(reply)
    assert parsed.ok, parsed.error
    assert (parsed.editing_success, parsed.minimal_editing) == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        (None, "empty"),
        ("The edit looks great, I would say eight.", "no 'score'"),
        ('{"score": [8], "reasoning": "one number"}', "two numbers"),
        ('{"score": [8, 6, 3]}', "two numbers"),
        ('{"score": ["high", "low"]}', "non-number"),
        ('{"score": [true, false]}', "non-number"),
        ('{"score": [11, 5]}', "outside"),
        ('{"score": [-1, 5]}', "outside"),
        ('{"score": [3, 4]} or maybe {"score": [5, 6]}', "several"),
        ('{"reasoning": "no score key"}', "no 'score'"),
    ],
)
def test_parse_reply_rejects_without_inventing_a_score(reply, reason):
    parsed = parse_reply(reply)
    assert not parsed.ok and parsed.editing_success is None and parsed.minimal_editing is None
    assert reason in parsed.error


def test_prompt_is_the_papers_figure_10():
    prompt = render_prompt("put the {red} cup on the table")
    assert prompt.startswith("You are a professional digital artist.")
    assert prompt.endswith("Editing instruction: put the {red} cup on the table")
    assert '{"score": [...], "reasoning": "..."}\n' in prompt
    assert "- A second score from 0 to 10 will rate the degree of minimal editing." in prompt
    assert "{{" not in prompt and "]}" not in prompt


# ----------------------------------------------------------------------------------------------------------------
# End to end through the openai client
# ----------------------------------------------------------------------------------------------------------------
def test_rows_scored_parsed_and_summarised(openai_server, requests, tmp_path):
    variants = [
        ('{"score": [8, 6], "reasoning": "moved"}', (8, 6)),
        ('```json\n{"score": [3, 10], "reasoning": "partly"}\n```', (3, 10)),
        ('Sure! {"score": ["9", "7"], "reasoning": "good"} Hope this helps.', (9, 7)),
        ("I cannot evaluate these images.", None),
        ("{'score': [0, 10], 'reasoning': 'identical images'}", (0, 10)),
        ('{"score": [12, 4]}', None),
        ('{"score": [5, 5], "reasoning": "fine"}', (5, 5)),
        ('{"score": [10, 2], "reasoning": "over-edited"}', (10, 2)),
    ]
    by_instruction = {}
    for number, (request, (reply, _)) in enumerate(zip(requests, variants)):
        usage = {"prompt_tokens": 1000 + number, "completion_tokens": 20 + number, "total_tokens": 1020 + 2 * number}
        usage["prompt_tokens_details"] = {"cached_tokens": number, "image_tokens": 2 * number}
        by_instruction[request.instruction] = Reply(content=reply, usage=usage)
    openai_server.responder = lambda body: by_instruction[instruction_of(body)]

    results = judge_rows(requests, config(openai_server, tmp_path))

    assert [result.row_id for result in results] == [request.row_id for request in requests]
    for result, (reply, expected) in zip(results, variants):
        assert result.raw == reply and not result.cached
        if expected is None:
            assert not result.parsed and result.score is None and result.editing_success is None
            assert result.parse_error
        else:
            assert result.parsed and (result.editing_success, result.minimal_editing) == expected
            assert result.score == min(expected)
    assert results[0].reasoning == "moved"

    summary = summarize(results)
    scored = [expected for _, expected in variants if expected is not None]
    assert summary["n"] == 8 and summary["n_parsed"] == 6 and summary["n_unparsable"] == 2
    assert summary["score"] == pytest.approx(np.mean([min(pair) for pair in scored]))
    assert summary["editing_success"] == pytest.approx(np.mean([pair[0] for pair in scored]))
    assert summary["minimal_editing"] == pytest.approx(np.mean([pair[1] for pair in scored]))
    assert summary["usage"] == {
        "prompt_tokens": sum(1000 + n for n in range(8)),
        "completion_tokens": sum(20 + n for n in range(8)),
        "total_tokens": sum(1020 + 2 * n for n in range(8)),
        "prompt_tokens_details.cached_tokens": sum(range(8)),
        "prompt_tokens_details.image_tokens": sum(2 * n for n in range(8)),
    }
    assert summary["usage_sent"] == summary["usage"] and summary["n_cached"] == 0

    # What the endpoint received: one request per row, the paper's prompt, source then prediction, temperature 0.
    sent = openai_server.chat_requests()
    assert len(sent) == 8 and all(request.status == 200 for request in sent)
    by_text = {instruction_of(request.body): request for request in sent}
    for request in requests:
        received = by_text[request.instruction]
        assert received.headers["authorization"] == f"Bearer {openai_server.api_key}"
        body = received.body
        assert body["model"] == "gpt-4o-2024-11-20" and body["temperature"] == 0 and "max_tokens" not in body
        [message] = body["messages"]
        assert message["role"] == "user"
        text, first, second = message["content"]
        assert text == {"type": "text", "text": render_prompt(request.instruction)}
        for part, image in ((first, request.source), (second, request.prediction)):
            assert part["type"] == "image_url"
            decoded = decode_data_url(part["image_url"]["url"])
            assert decoded.mode == "RGB" and decoded.size == image.size
            assert np.array_equal(np.asarray(decoded), np.asarray(image.convert("RGB")))


def test_rerun_is_served_from_the_cache(openai_server, requests, tmp_path, monkeypatch):
    replies = {
        request.instruction: f'{{"score": [{n}, {10 - n}], "reasoning": "r{n}"}}' for n, request in enumerate(requests)
    }
    openai_server.responder = lambda body: Reply(content=replies[instruction_of(body)])
    first = judge_rows(requests, config(openai_server, tmp_path))
    assert len(openai_server.chat_requests()) == 8

    # The rerun sends nothing (and needs no key), and returns the same verdicts marked as cached.
    monkeypatch.delenv("OPENAI_API_KEY")
    second = judge_rows(requests, config(openai_server, tmp_path))
    assert len(openai_server.chat_requests()) == 8
    assert all(result.cached for result in second)
    assert [(r.row_id, r.score, r.raw, r.usage) for r in second] == [
        (r.row_id, r.score, r.raw, r.usage) for r in first
    ]
    summary = summarize(second)
    assert summary["n_cached"] == 8 and summary["usage_sent"] == {} and summary["usage"] == summarize(first)["usage"]

    # Cache files: one per row, atomic (no temporaries left), and no trace of the API key.
    files = sorted((tmp_path / "cache").rglob("*"))
    entries = [path for path in files if path.is_file()]
    assert len(entries) == 8 and all(path.suffix == ".json" and not path.name.startswith(".") for path in entries)
    for path in entries:
        text = path.read_text()
        assert openai_server.api_key not in text and "authorization" not in text.lower()
        assert json.loads(text)["raw"] in replies.values()

    # The key covers the images and the model: a changed prediction or another model is asked again.
    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    changed = list(requests)
    changed[3] = JudgeRequest(requests[3].row_id, requests[3].instruction, requests[3].source, requests[3].source)
    again = judge_rows(changed, config(openai_server, tmp_path))
    assert len(openai_server.chat_requests()) == 9
    assert [result.cached for result in again] == [True, True, True, False, True, True, True, True]
    other_model = JudgeConfig(model="gpt-4.1", base_url=openai_server.base_url, cache_dir=str(tmp_path / "cache"))
    judge_rows(requests[:2], other_model)
    assert len(openai_server.chat_requests()) == 11

    # The same question under two row ids is asked once, even without a cache.
    twin = JudgeRequest("twin", requests[0].instruction, requests[0].source.copy(), requests[0].prediction.copy())
    pair = judge_rows([requests[0], twin], config(openai_server, None))
    assert len(openai_server.chat_requests()) == 12
    assert [result.row_id for result in pair] == [requests[0].row_id, "twin"] and pair[0].raw == pair[1].raw


def test_retries_on_429_and_500_then_success(openai_server, requests, tmp_path):
    openai_server.script(Reply.failure(429, retry_after="0.9", message="Rate limit reached"), Reply.failure(500))
    results = judge_rows(requests[:2], config(openai_server, tmp_path, max_concurrency=1, max_retries=3))

    assert all(result.parsed and result.score == 7 for result in results)
    attempts = openai_server.chat_requests()
    assert [attempt.status for attempt in attempts] == [429, 500, 200, 200]
    assert [attempt.retry_count for attempt in attempts] == [0, 1, 2, 0]
    # The 429 asked for 0.9 s (the default first backoff is <= 0.5 s) and the client waited that long; after the
    # 500 it backed off by itself.
    assert attempts[1].arrived - attempts[0].answered >= 0.85
    assert attempts[2].arrived - attempts[1].answered >= 0.2
    # Only the successful reply was cached: the rerun sends nothing.
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2
    judge_rows(requests[:2], config(openai_server, tmp_path))
    assert len(openai_server.chat_requests()) == 4


def test_exhausted_retries_name_the_row_and_keep_earlier_replies(openai_server, requests, tmp_path):
    failing = requests[2].instruction
    openai_server.responder = lambda body: (
        Reply.failure(400, message="Invalid image") if instruction_of(body) == failing else Reply()
    )
    with pytest.raises(JudgeRequestError, match=rf"row '{requests[2].row_id}' failed with HTTP 400.*Invalid image"):
        judge_rows(requests[:5], config(openai_server, tmp_path, max_concurrency=1))
    # Rows 0 and 1 were answered and cached; the pool started nothing after the failure.
    assert len(openai_server.chat_requests()) == 3
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2

    openai_server.responder = lambda body: Reply()
    results = judge_rows(requests[:5], config(openai_server, tmp_path, max_concurrency=1))
    assert [result.cached for result in results] == [True, True, False, False, False]
    assert len(openai_server.chat_requests()) == 6

    openai_server.script(Reply.failure(503), Reply.failure(503))
    with pytest.raises(JudgeRequestError, match=rf"row '{requests[5].row_id}' failed with HTTP 503 after 1 retries"):
        judge_rows(requests[5:6], config(openai_server, tmp_path, max_retries=1))


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(openai_server, requests, limit):
    openai_server.responder = lambda body: Reply(delay=0.15)
    results = judge_rows(requests, config(openai_server, None, max_concurrency=limit))
    assert len(results) == 8 and all(result.parsed for result in results)
    assert len(openai_server.chat_requests()) == 8
    assert openai_server.max_in_flight <= limit
    assert openai_server.max_in_flight >= min(limit, 2)


def test_missing_key_and_bad_settings_are_named(openai_server, requests, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        judge_rows(requests[:1], config(openai_server, tmp_path))
    assert openai_server.chat_requests() == []

    monkeypatch.setenv("JUDGE_KEY", "sk-wrong")
    with pytest.raises(JudgeRequestError, match="HTTP 401"):
        judge_rows(requests[:1], config(openai_server, tmp_path, api_key_env="JUDGE_KEY"))

    with pytest.raises(ValueError, match="max_concurrency"):
        JudgeConfig(max_concurrency=0)
    with pytest.raises(ValueError, match="max_tokens"):
        JudgeConfig(max_tokens=0)

    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    judge_rows(requests[:1], config(openai_server, tmp_path))
    [entry] = list((tmp_path / "cache").rglob("*.json"))
    entry.write_text("{not json")
    with pytest.raises(ValueError, match=rf"judge cache entry {entry}"):
        judge_rows(requests[:1], config(openai_server, tmp_path))
