"""Output that survives a crash (atomic writes, append-only JSONL logs that resume) and JSON read back safely.

Long jobs write through here. A file is written under a temporary name beside it (``.<name>.<pid>.tmp``: processes
writing into one folder never share one) and renamed into place with ``os.replace``, so a reader never sees half a
file. An append-only JSONL log (probe scores, predictions,
key-frame rows) is read back by :func:`read_jsonl_log`, which drops a last line cut short by a crash, so the job
redoes that row instead of failing on it. Nothing here imports the rest of wm-hub: every layer may use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (its folder created), then rename it into place.

    Args:
        path: The file to write.
        write: Writes the whole file to the path it is given (e.g. ``lambda tmp: image.save(tmp, format="PNG")``).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, value: Any, indent: int | None = 2, **dumps: Any) -> Path:
    """Write ``value`` as JSON (and a final newline) to ``path`` atomically; ``dumps`` go to ``json.dumps``."""
    return write_text(path, json.dumps(value, indent=indent, **dumps) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any], **dumps: Any) -> Path:
    """Write one JSON line per row to ``path`` atomically; ``dumps`` go to ``json.dumps``."""
    return write_text(path, "".join(json.dumps(row, **dumps) + "\n" for row in rows))


def read_jsonl_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL log, or ``[]`` when there is none yet.

    A last line without its newline was cut short by a crash while appending: it is dropped, and the file is
    rewritten without it, so that appending resumes on a clean line. Blank lines are skipped.

    Raises:
        ValueError: A complete line that is not a JSON object (named ``file:line``): the log is not one this job
            wrote, and guessing would lose or repeat work.
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        write_text(path, text)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: not a JSON object; delete the file to redo the work it records")
        rows.append(row)
    return rows


def utf8_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number from 1, text)`` of each line of ``path``, decoded as UTF-8 one line at a time.

    Raises:
        ValueError: A line that is not UTF-8 text, named ``path:line`` (Python's own error names neither).
    """
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``path`` (a settings or run file).

    Raises:
        ValueError: The file is not valid JSON, or holds something other than an object (named with the path).
    """
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    except UnicodeDecodeError as error:  # e.g. a picture given where a JSON file goes
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text: {error.reason} at byte {error.start})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
