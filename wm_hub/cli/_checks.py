"""Checks several tasks run on their model arguments before loading anything (private: not a task module)."""

from __future__ import annotations


def check_trained_task(flag: str, name: str, wanted: str) -> None:
    """Refuse a fine-tuned checkpoint of the other task (its ``training_run.json`` says what it was trained as)."""
    from wm_hub.inference.prediction import check_trained_task as check

    try:
        check(flag, name, wanted)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
