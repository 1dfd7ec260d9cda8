"""What the benchmarks that generate replies share (``wm-hub eval idm``, ``wm-hub eval spatial``).

Both ask a model for a reply to every row (an action, a multiple-choice answer), batch by batch, and score the
replies. :class:`GenerationEvalConfig` holds their common settings and checks them before anything is loaded.
Replies are appended to a predictions JSONL as they are made (:func:`complete_predictions`): a rerun, or a run
after a crash, only generates the rows that file lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from wm_hub.atomic_io import read_jsonl_log

Model = TypeVar("Model")


@dataclass
class GenerationEvalConfig:
    """The model, the output files and the batching of a generating benchmark.

    Args:
        model: Checkpoint folder or Hub id (``eval idm``: an inverse-dynamics model).
        out: Results JSON file to write.
        predictions: Replies JSONL, appended as they are made so that a rerun resumes (default: ``out`` with the
            suffix ``.predictions.jsonl``).
        limit: Evaluate only the first N rows (default: every row).
        batch_size: Rows per ``generate`` call.
        max_new_tokens: Longest reply in tokens (default: the benchmark's, 48 for ``eval idm``'s actions and 8
            for ``eval spatial``'s answers).
        device: Torch device of the model (default: CPU).
        dtype: LM dtype, e.g. bfloat16 (default: the checkpoint's).
    """

    model: str
    out: str
    predictions: str | None = None
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int | None = None
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        for flag, value in (("--batch-size", self.batch_size), ("--max-new-tokens", self.max_new_tokens)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1 (leave it out for every row), got {self.limit}")
        out = Path(self.out)
        if out.is_dir():
            raise ValueError(f"--out {out} is a folder: give the results JSON file")
        if self.predictions_path.resolve() == out.resolve():
            raise ValueError(f"--predictions and --out are both {out}: the results would overwrite the predictions")

    def check_apart_from(self, flag: str, source: str | Path | None) -> None:
        """Refuse ``--out`` or the predictions file over the input ``source``: that file, or in that folder one of
        the files a run reads (a benchmark's ``test.json`` or ``data/``, a dataset's shards, the pictures), which the
        run would replace. Results of their own beside the inputs are fine.

        Raises:
            ValueError: Naming both options.
        """
        for flag_written, path in (("--out", Path(self.out)), ("--predictions", self.predictions_path)):
            if writes_over_input(path, source):
                raise ValueError(f"{flag_written} {path} would write over {flag} {source}: write it elsewhere")

    @property
    def predictions_path(self) -> Path:
        """The replies JSONL: ``predictions``, or ``out`` with the suffix ``.predictions.jsonl``."""
        return Path(self.predictions) if self.predictions else Path(self.out).with_suffix(".predictions.jsonl")


INPUT_SUFFIXES = {".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


def writes_over_input(path: str | Path, source: str | Path | None) -> bool:
    """Whether writing ``path`` would replace the input ``source``: that file, or in that folder a file a run reads
    there (``test.json``, anything under ``data/``, a picture or a dataset shard). A Hub id (nothing local) is
    never written over."""
    if source is None or not Path(source).exists():
        return False
    source, target = Path(source).resolve(), Path(path).resolve()
    if target == source:
        return True
    if not (source.is_dir() and target.is_relative_to(source)):
        return False
    relative = target.relative_to(source)
    return relative.name == "test.json" or relative.parts[0] == "data" or relative.suffix.lower() in INPUT_SUFFIXES


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """Replies already in a predictions JSONL, by row id (a last line cut short by a crash is dropped).

    Raises:
        ValueError: A line that is not a JSON object, or one without an ``id`` (not a predictions file).
    """
    done = {}
    for number, row in enumerate(read_jsonl_log(path), 1):
        if "id" not in row:
            raise ValueError(f"{path}: row {number} is not a prediction row; delete the file to redo")
        done[row["id"]] = row
    return done


def complete_predictions(
    path: str | Path,
    ids: Sequence[str],
    batch_size: int,
    load_model: Callable[[], Model],
    predict: Callable[[Model, list[int]], list[dict[str, Any]]],
    desc: str = "predictions",
) -> list[dict[str, Any]]:
    """The reply of every row, reusing those already in ``path`` and appending the others batch by batch.

    Args:
        path: The predictions JSONL (created with its folder when missing).
        ids: Row ids, in order.
        batch_size: Rows per ``predict`` call.
        load_model: Loads the model; called only when some row has no reply yet.
        predict: ``(model, positions of a batch of rows) -> one reply row (with its "id") per position``.
        desc: Progress-bar label.

    Returns:
        One reply row per id, in the order of ``ids``.
    """
    path = Path(path)
    done = read_predictions(path)
    todo = [index for index, row_id in enumerate(ids) if row_id not in done]
    if todo:
        model = load_model()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            for start in tqdm(range(0, len(todo), batch_size), desc=desc, unit="batch"):
                for row in predict(model, todo[start : start + batch_size]):
                    done[row["id"]] = row
                    handle.write(json.dumps(row) + "\n")
                handle.flush()
    return [done[row_id] for row_id in ids]
