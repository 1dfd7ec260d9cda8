"""GPT-4o-as-judge (paper section 4 and appendix F): an OpenAI-compatible chat model scores predicted edits.

Each row sends one ``chat.completions`` request with the paper's prompt (Figure 10, :data:`JUDGE_PROMPT`), the
source image and the predicted image (base64 PNG data URLs, in that order), at temperature 0 by default (wm-hub's
choice for repeatable scores: the paper does not state a temperature). The judge answers
``{"score": [editing_success, minimal_editing], "reasoning": "..."}`` (both 0-10); the row's score is the minimum of
the two and the benchmark score is the mean of the rows' minimums (as Fang et al. 2025, the paper's Table 2), with
the means of each criterion reported beside it (paper Table 3).

- **Parsing** (:func:`parse_reply`) accepts the object wrapped in a ```` ```json ```` fence or surrounded by prose,
  Python-dict quoting, numbers written as strings, and a reply whose JSON is broken elsewhere (e.g. unescaped
  quotes in the reasoning) but whose ``"score": [a, b]`` list is intact. A reply without exactly one such pair of
  numbers in [0, 10] is *unparsable*: counted and excluded from the means, never given a made-up score. Raw replies
  are always kept.
- **Cache**: every reply is stored on disk under ``cache_dir`` (one JSON file per request, written to a temporary
  name and moved into place with ``os.replace``), keyed by the model, the rendered prompt, the hashes of both
  images' pixels and the sampling settings. A rerun reads the cache and sends no request; cached replies are
  re-parsed on read, so a parser fix applies to them. The API key is never written anywhere.
- **Requests** go through the real ``openai`` client (``OpenAI(base_url=..., max_retries=..., timeout=...)``), which
  retries 408/409/429/5xx and connection errors itself with backoff and honours ``Retry-After``. Up to
  ``max_concurrency`` requests are in flight at once (a thread pool sharing one client). A request that still fails
  stops the run with an error naming the row after the requests already in flight have finished (their replies
  are cached, so a rerun resumes where it stopped).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import io
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

#: The judge prompt of the paper's Figure 10 (``{instruction}`` is the row's action). The figure's JSON example ends
#: in ``"..."}]}``, a transcription slip of the format string's escaped ``}}``; it is rendered here as the valid
#: object ``{"score": [...], "reasoning": "..."}``.
JUDGE_PROMPT = """You are a professional digital artist. You will have to evaluate the effectiveness of the \
AI-generated image(s) based on the given rules.

You will have to give your output in a valid way of a Python dictionary format (Keep your reasoning concise and \
short.):

{{"score": [...], "reasoning": "..."}}

and don't output anything else. Two images will be provided:

- The first being the original AI-generated image
- The second being an edited version of the first.

The objective is to evaluate how successfully the editing instruction has been executed in the second image.

Note that sometimes the two images might look identical due to a failure in image editing. From a scale of 0 to 10:

- A score from 0 to 10 will be given based on the success of the editing.
- A second score from 0 to 10 will rate the degree of minimal editing.

Editing instruction: {instruction}"""

#: Bumped when the cache file layout or the cache key changes (old entries are then simply not found).
CACHE_VERSION = 1
API_KEY_ENV = "OPENAI_API_KEY"
SCORE_RANGE = (0.0, 10.0)
PNG_COMPRESS_LEVEL = 1


@dataclass
class JudgeConfig:
    """Settings of the judge.

    Attributes:
        model: Chat model name sent to the endpoint (default: the paper's snapshot ``gpt-4o-2024-11-20``).
        base_url: OpenAI-compatible endpoint (``http://host:8000/v1`` for vLLM...); ``None`` is the client's default
            (``OPENAI_BASE_URL`` or OpenAI).
        api_key_env: Name of the environment variable holding the API key (read when a request has to be sent;
            never printed or stored). Endpoints without authentication accept any value, e.g. ``EMPTY``.
        cache_dir: Reply cache folder; ``None`` disables the cache (every call sends every request).
        max_concurrency: Requests in flight at once.
        max_retries: Retries of the ``openai`` client on 408/409/429/5xx and connection errors (``Retry-After``
            honoured, exponential backoff otherwise).
        timeout: Seconds before one request attempt times out.
        temperature: Sampling temperature (wm-hub's default 0; the paper does not state one).
        max_tokens: Reply length limit sent as ``max_tokens``; ``None`` sends none (the endpoint's default).
    """

    model: str = "gpt-4o-2024-11-20"
    base_url: str | None = None
    api_key_env: str = API_KEY_ENV
    cache_dir: str | None = None
    max_concurrency: int = 8
    max_retries: int = 4
    timeout: float = 120.0
    temperature: float = 0.0
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("JudgeConfig.model: a model name is required")
        if self.max_concurrency < 1:
            raise ValueError(f"JudgeConfig.max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise ValueError(f"JudgeConfig.max_retries must be >= 0, got {self.max_retries}")
        if self.timeout <= 0:
            raise ValueError(f"JudgeConfig.timeout must be > 0, got {self.timeout}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"JudgeConfig.max_tokens must be >= 1 or None, got {self.max_tokens}")


@dataclass
class JudgeRequest:
    """One row to judge.

    Attributes:
        row_id: The row's id (kept in the result; not part of the cache key).
        instruction: The editing instruction (the row's action text).
        source: The source observation (the "original" image of the prompt).
        prediction: The predicted next observation (the "edited" image).
    """

    row_id: str
    instruction: str
    source: Image.Image
    prediction: Image.Image


@dataclass
class JudgeResult:
    """The judge's verdict on one row.

    Attributes:
        row_id: The request's row id.
        editing_success: First score (0-10), ``None`` when the reply was unparsable.
        minimal_editing: Second score (0-10), ``None`` when unparsable.
        score: ``min(editing_success, minimal_editing)``, ``None`` when unparsable.
        parsed: Whether the reply held one valid score pair.
        raw: The reply text exactly as received.
        usage: Token counts of the request that produced the reply (``prompt_tokens``, ``completion_tokens``,
            ``total_tokens`` and flattened ``*_details.*`` counts when the endpoint reports them).
        cached: Whether the reply came from the cache (no request sent by this call).
        reasoning: The reply's ``reasoning`` text when it had one.
        parse_error: Why the reply was unparsable (``None`` when parsed).
    """

    row_id: str
    editing_success: float | None
    minimal_editing: float | None
    score: float | None
    parsed: bool
    raw: str
    usage: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    reasoning: str | None = None
    parse_error: str | None = None


@dataclass
class ParsedReply:
    """Result of :func:`parse_reply`: a score pair, or the reason there is none."""

    editing_success: float | None = None
    minimal_editing: float | None = None
    reasoning: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a valid score pair was found."""
        return self.error is None


class JudgeRequestError(RuntimeError):
    """A judge request failed after the client's retries (the row is named; replies received so far are cached)."""


# ----------------------------------------------------------------------------------------------------------------
# Prompt, images and cache keys
# ----------------------------------------------------------------------------------------------------------------
def render_prompt(instruction: str) -> str:
    """The paper's judge prompt for one editing instruction."""
    return JUDGE_PROMPT.format(instruction=instruction)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def image_hash(image: Image.Image) -> str:
    """SHA-256 of an image's RGB pixels and size (what the judge is shown, independent of the file encoding)."""
    rgb = _rgb(image)
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def image_data_url(image: Image.Image) -> str:
    """The image as an RGB PNG ``data:`` URL (the ``image_url`` form of the chat API).

    PNG is lossless at any compression level; level 1 encodes a 1280x960 photo about 2.5x faster than Pillow's
    default 6 for about 14% more bytes (benchmarks/bench_judge.py), a good trade for an upload.
    """
    buffer = io.BytesIO()
    _rgb(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def build_messages(request: JudgeRequest) -> list[dict[str, Any]]:
    """One user message: the prompt text, then the source and the predicted image."""
    source = image_data_url(request.source)
    identical = request.prediction is request.source or image_hash(request.prediction) == image_hash(request.source)
    prediction = source if identical else image_data_url(request.prediction)
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": render_prompt(request.instruction)},
                {"type": "image_url", "image_url": {"url": source}},
                {"type": "image_url", "image_url": {"url": prediction}},
            ],
        }
    ]


def cache_key(config: JudgeConfig, request: JudgeRequest) -> str:
    """Hex key of a request: model, rendered prompt, both image hashes and the sampling settings."""
    material = {
        "version": CACHE_VERSION,
        "model": config.model,
        "prompt": render_prompt(request.instruction),
        "images": [image_hash(request.source), image_hash(request.prediction)],
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    """A cached reply, or ``None`` when absent (a corrupt entry is named in the error)."""
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"judge cache entry {path} is unreadable ({error}); delete it to re-query the row") from error
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("raw"), str)
        or not isinstance(entry.get("usage"), dict)
    ):
        raise ValueError(f"judge cache entry {path} lacks its 'raw' text or 'usage'; delete it to re-query the row")
    return entry


def _write_cache(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(entry, stream, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------------------------
# Reply parsing
# ----------------------------------------------------------------------------------------------------------------
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_SCORE_LIST = re.compile(
    r"""["']?scores?["']?\s*[:=]\s*\[\s*["']?("""
    + _NUMBER
    + r""")["']?\s*,\s*["']?("""
    + _NUMBER
    + r""")["']?\s*\]""",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)


def _number(value: Any) -> float | None:
    """A finite number from an int/float or a numeric string (``"8"``, ``" 7.5 "``, ``"8/10"``); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("/10"):
            text = text[:-3].strip()
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _balanced_objects(text: str) -> Iterable[str]:
    """Every ``{...}`` substring with balanced braces (quotes respected), outermost first, in order."""
    for start, char in enumerate(text):
        if char != "{":
            continue
        depth, quote, escaped = 0, None, False
        for end in range(start, len(text)):
            current = text[end]
            if quote:
                if escaped:
                    escaped = False
                elif current == "\\":
                    escaped = True
                elif current == quote:
                    quote = None
            elif current in "\"'":
                quote = current
            elif current == "{":
                depth += 1
            elif current == "}":
                depth -= 1
                if depth == 0:
                    yield text[start : end + 1]
                    break


def _literal(text: str, default: Any = None) -> Any:
    """``text`` decoded as JSON, else as a Python literal (the prompt asks for "a Python dictionary format")."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return default


def _load_object(candidate: str) -> dict[str, Any] | None:
    value = _literal(candidate)
    return value if isinstance(value, dict) else None


def _pair_from_object(value: dict[str, Any]) -> tuple[tuple[float, float] | None, str | None, str | None]:
    """``(pair, reasoning, error)`` of a decoded object with a ``score`` key."""
    keys = {str(key).strip().lower(): key for key in value}
    key = keys.get("score", keys.get("scores"))
    reasoning = value.get(keys["reasoning"]) if "reasoning" in keys else None
    reasoning = reasoning if isinstance(reasoning, str) else None
    scores = value[key]
    if isinstance(scores, str):
        scores = _literal(scores, default=scores)
    if not isinstance(scores, list | tuple) or len(scores) != 2:
        return None, reasoning, f"'score' is not a list of two numbers: {scores!r}"
    numbers = [_number(item) for item in scores]
    if any(number is None for number in numbers):
        return None, reasoning, f"'score' holds a non-number: {scores!r}"
    return (numbers[0], numbers[1]), reasoning, None


def parse_reply(text: str | None) -> ParsedReply:
    """Extract ``(editing_success, minimal_editing)`` from a judge reply, or say why it cannot be done.

    Candidates, in order: objects inside ``` fences, every balanced ``{...}`` in the text (JSON, then Python
    literal syntax), and finally bare ``"score": [a, b]`` lists (for replies whose JSON is broken elsewhere). The
    reply is parsed only when the candidates agree on exactly one pair and both numbers lie in [0, 10].

    Args:
        text: The reply's text (``None`` for an empty/refused reply).

    Returns:
        The scores and reasoning, or ``error`` set.
    """
    if not text or not text.strip():
        return ParsedReply(error="empty reply")
    pairs: list[tuple[float, float]] = []
    reasoning: str | None = None
    errors: list[str] = []
    regions = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    for region in regions:
        for candidate in _balanced_objects(region):
            value = _load_object(candidate)
            if value is None or not {str(key).strip().lower() for key in value} & {"score", "scores"}:
                continue
            pair, found_reasoning, error = _pair_from_object(value)
            if error:
                errors.append(error)
            else:
                pairs.append(pair)
                reasoning = reasoning or found_reasoning
    if not pairs:
        for match in _SCORE_LIST.finditer(text):
            pairs.append((float(match.group(1)), float(match.group(2))))
    distinct = sorted(set(pairs))
    if not distinct:
        return ParsedReply(error=errors[0] if errors else "no 'score' list of two numbers in the reply")
    if len(distinct) > 1:
        return ParsedReply(error=f"the reply holds several different score pairs: {distinct}")
    (editing_success, minimal_editing) = distinct[0]
    low, high = SCORE_RANGE
    if not (low <= editing_success <= high and low <= minimal_editing <= high):
        return ParsedReply(error=f"scores {[editing_success, minimal_editing]} outside [{low:g}, {high:g}]")
    return ParsedReply(editing_success, minimal_editing, reasoning)


# ----------------------------------------------------------------------------------------------------------------
# Requests
# ----------------------------------------------------------------------------------------------------------------
def _flat_usage(usage: Any) -> dict[str, int]:
    """Integer token counts of a ``CompletionUsage`` (details flattened as ``prompt_tokens_details.cached_tokens``)."""
    if usage is None:
        return {}
    data = usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
    flat: dict[str, int] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for inner, count in value.items():
                if isinstance(count, int) and not isinstance(count, bool):
                    flat[f"{key}.{inner}"] = count
        elif isinstance(value, int) and not isinstance(value, bool):
            flat[key] = value
    return flat


def _make_client(config: JudgeConfig):
    """The ``openai`` client for ``config`` (the key read from the environment, never kept elsewhere)."""
    from openai import OpenAI

    api_key = os.environ.get(config.api_key_env)
    if not api_key:
        where = config.base_url or "OpenAI"
        raise RuntimeError(
            f"the judge needs an API key for {where} in the environment variable {config.api_key_env} "
            "(endpoints without authentication, e.g. a local vLLM server, accept any value such as EMPTY)"
        )
    return OpenAI(api_key=api_key, base_url=config.base_url, max_retries=config.max_retries, timeout=config.timeout)


def _ask(client: Any, config: JudgeConfig, request: JudgeRequest) -> dict[str, Any]:
    """Send one request; the cache entry of its reply."""
    import openai

    options: dict[str, Any] = {"model": config.model, "messages": build_messages(request)}
    options["temperature"] = config.temperature
    if config.max_tokens is not None:
        options["max_tokens"] = config.max_tokens
    try:
        completion = client.chat.completions.create(**options)
    except openai.APIStatusError as error:
        raise JudgeRequestError(
            f"judge request for row {request.row_id!r} failed with HTTP {error.status_code} after "
            f"{config.max_retries} retries: {error.message}"
        ) from error
    except openai.APIError as error:
        raise JudgeRequestError(
            f"judge request for row {request.row_id!r} failed after {config.max_retries} retries: {error}"
        ) from error
    if not completion.choices:
        raise JudgeRequestError(f"judge reply for row {request.row_id!r} has no choices")
    message = completion.choices[0].message
    raw = message.content if message.content is not None else (getattr(message, "refusal", None) or "")
    return {
        "version": CACHE_VERSION,
        "model": config.model,
        "response_model": completion.model,
        "finish_reason": completion.choices[0].finish_reason,
        "raw": raw,
        "usage": _flat_usage(completion.usage),
    }


def _result(request: JudgeRequest, entry: dict[str, Any], cached: bool) -> JudgeResult:
    parsed = parse_reply(entry["raw"])
    score = min(parsed.editing_success, parsed.minimal_editing) if parsed.ok else None
    return JudgeResult(
        row_id=request.row_id,
        editing_success=parsed.editing_success,
        minimal_editing=parsed.minimal_editing,
        score=score,
        parsed=parsed.ok,
        raw=entry["raw"],
        usage={key: int(value) for key, value in entry["usage"].items()},
        cached=cached,
        reasoning=parsed.reasoning,
        parse_error=parsed.error,
    )


def judge_rows(requests: Sequence[JudgeRequest], config: JudgeConfig, progress: bool = True) -> list[JudgeResult]:
    """Judge every request (cached replies reused, the rest sent concurrently), results in input order.

    Args:
        requests: Rows to judge.
        config: Endpoint, model, cache and concurrency settings.
        progress: Show a tqdm progress bar.

    Returns:
        One :class:`JudgeResult` per request, in input order.

    Raises:
        RuntimeError: Requests must be sent and the API key variable is unset.
        JudgeRequestError: A request failed after the client's retries (row named; the replies received before are
            cached).
        ValueError: A cache entry is corrupt (path named).
    """
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    results: list[JudgeResult | None] = [None] * len(requests)
    pending: dict[str, list[int]] = {}  # key -> rows asking exactly the same (one request for all of them)
    for index, request in enumerate(requests):
        key = cache_key(config, request)
        entry = None if key in pending or cache_dir is None else _read_cache(_cache_path(cache_dir, key))
        if entry is None:
            pending.setdefault(key, []).append(index)
        else:
            results[index] = _result(request, entry, cached=True)
    waiting = sum(len(indices) for indices in pending.values())
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            tqdm(
                total=len(requests), initial=len(requests) - waiting, desc="Judge", unit=" rows", disable=not progress
            )
        )
        if pending:
            client = stack.enter_context(_make_client(config))
            lock = threading.Lock()
            stop = threading.Event()

            def run(key: str, indices: list[int]) -> None:
                if stop.is_set():  # another request failed or the run was interrupted: send no new one
                    return
                try:
                    entry = _ask(client, config, requests[indices[0]])
                    if cache_dir:
                        _write_cache(_cache_path(cache_dir, key), entry)
                except BaseException:
                    stop.set()
                    raise
                for index in indices:
                    results[index] = _result(requests[index], entry, cached=False)
                with lock:
                    bar.update(len(indices))

            pool = ThreadPoolExecutor(max_workers=min(config.max_concurrency, len(pending)))
            try:
                futures: list[Future] = [pool.submit(run, key, indices) for key, indices in pending.items()]
                wait(futures, return_when=FIRST_EXCEPTION)
                failed = [future for future in futures if future.done() and future.exception() is not None]
                if failed:
                    raise failed[0].exception()
            finally:
                # On a failure or an interrupt, the requests in flight finish (their replies are cached) and no new
                # one starts; after a normal end this changes nothing.
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
    return results  # type: ignore[return-value]


def summarize(results: Sequence[JudgeResult]) -> dict[str, Any]:
    """Aggregate judge results the way the paper reports them.

    Args:
        results: Per-row results.

    Returns:
        ``score`` (mean over parsed rows of min(ES, ME), paper Table 2), ``editing_success`` and ``minimal_editing``
        (means, paper Table 3), ``n``, ``n_parsed``, ``n_unparsable``, ``n_cached``, ``usage`` (tokens of every
        reply, summed) and ``usage_sent`` (tokens of the requests this run sent, i.e. not cached). Means are
        ``None`` when no reply was parsed.
    """
    parsed = [result for result in results if result.parsed]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    def total(items: Iterable[JudgeResult]) -> dict[str, int]:
        summed: dict[str, int] = {}
        for item in items:
            for key, value in item.usage.items():
                summed[key] = summed.get(key, 0) + value
        return summed

    return {
        "score": mean([result.score for result in parsed]),
        "editing_success": mean([result.editing_success for result in parsed]),
        "minimal_editing": mean([result.minimal_editing for result in parsed]),
        "n": len(results),
        "n_parsed": len(parsed),
        "n_unparsable": len(results) - len(parsed),
        "n_cached": sum(result.cached for result in results),
        "usage": total(results),
        "usage_sent": total(result for result in results if not result.cached),
    }
