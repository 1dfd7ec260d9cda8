"""Checks several tasks run on their model arguments before loading anything (private: not a task module)."""

from __future__ import annotations


def check_trained_task(flag: str, name: str, wanted: str) -> None:
    """Refuse a fine-tuned checkpoint of the other task (its ``training_run.json`` says what it was trained as)."""
    from wm_hub.models.model_folder import trained_task

    task = trained_task(name)
    if task is not None and task != wanted:
        raise SystemExit(
            f"error: {flag} {name} was fine-tuned as an {task.upper()} (its training_run.json says task: {task}); "
            f"{flag} needs an {wanted.upper()}"
        )
