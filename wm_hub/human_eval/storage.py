"""Durable answers of a study in SQLite: one transaction per answer, one answer per (annotator, row).

The database (``STUDY/answers.sqlite`` by default) runs in WAL mode with ``synchronous=FULL``: a committed answer
survives a server crash or restart, readers never block the writer, and concurrent annotators (threads or
processes) serialise on SQLite's write lock. ``UNIQUE (annotator, row)`` makes a double submit (a resent form, a
second tab) a no-op instead of a second count: the first answer stands. ``CHECK (best <> worst)`` keeps the
database itself from ever holding an answer the app would refuse. Each database is tied to one study by the
fingerprint of its ``study.json``: answers of another study are never mixed in.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ANNOTATOR_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Annotator names: they appear in links (``/a/<name>``), so letters, digits, ``_``, ``.``, ``-`` (max 64)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    annotator TEXT NOT NULL REFERENCES annotators (name),
    row TEXT NOT NULL,
    best INTEGER NOT NULL CHECK (best >= 1),
    worst INTEGER NOT NULL CHECK (worst >= 1),
    submitted_at TEXT NOT NULL,
    UNIQUE (annotator, row),
    CHECK (best <> worst)
);
"""


@dataclass(frozen=True)
class Answer:
    """One annotator's choice on one row, as displayed positions (1-based: "Model 1" is 1).

    Attributes:
        annotator: Annotator name.
        row: Study row key (``r001``...).
        best: Displayed position chosen as best.
        worst: Displayed position chosen as worst.
    """

    annotator: str
    row: str
    best: int
    worst: int


def check_annotator(name: str) -> str:
    """``name`` stripped, if it is a valid annotator name.

    Raises:
        ValueError: Not 1-64 letters, digits, ``_``, ``.`` or ``-`` starting with a letter or digit.
    """
    name = name.strip()
    if not ANNOTATOR_PATTERN.fullmatch(name):
        raise ValueError(
            f"annotator name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


class AnswerStore:
    """The answers database of one study (safe to share between threads and processes).

    Every call opens its own connection (SQLite connections must not cross threads) and commits before returning.

    Args:
        path: The SQLite file (created with its tables if missing).
        study_fingerprint: The study's fingerprint; a database created for another study is refused. ``None``
            (reading answers for scoring) skips the check.

    Raises:
        ValueError: The database belongs to another study.
    """

    def __init__(self, path: str | Path, study_fingerprint: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
            if study_fingerprint is not None:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('study_fingerprint', ?)", (study_fingerprint,)
                )
                (stored,) = connection.execute("SELECT value FROM meta WHERE key = 'study_fingerprint'").fetchone()
                connection.execute("COMMIT")
                if stored != study_fingerprint:
                    raise ValueError(
                        f"{self.path}: this answers database belongs to another study (study.json changed or "
                        "another study's database); use a new --db"
                    )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
            yield connection
        finally:
            connection.close()

    def add_annotator(self, name: str) -> None:
        """Register ``name`` (no-op when it exists).

        Raises:
            ValueError: Not a valid annotator name.
        """
        name = check_annotator(name)
        with self._connect() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO annotators (name, created_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )

    def record(self, answer: Answer) -> bool:
        """Store ``answer`` in one transaction.

        Returns:
            True if stored, False if this annotator had already answered this row (the first answer stands).

        Raises:
            ValueError: best equals worst, a position below 1, or an unknown annotator.
        """
        if answer.best == answer.worst:
            raise ValueError(f"row {answer.row}: the best and the worst output must differ (both {answer.best})")
        with self._connect() as connection:
            try:
                connection.execute("BEGIN IMMEDIATE")
                cursor = connection.execute(
                    "INSERT INTO answers (annotator, row, best, worst, submitted_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (annotator, row) DO NOTHING",
                    (answer.annotator, answer.row, answer.best, answer.worst, datetime.now(UTC).isoformat()),
                )
                connection.execute("COMMIT")
            except sqlite3.IntegrityError as error:
                connection.execute("ROLLBACK")
                raise ValueError(f"answer {answer} refused by the database: {error}") from None
            return cursor.rowcount == 1

    def answered(self, annotator: str) -> set[str]:
        """Rows ``annotator`` has answered."""
        with self._connect() as connection:
            rows = connection.execute("SELECT row FROM answers WHERE annotator = ?", (annotator,)).fetchall()
        return {row for (row,) in rows}

    def annotators(self) -> list[str]:
        """Registered annotators, by name."""
        with self._connect() as connection:
            return [name for (name,) in connection.execute("SELECT name FROM annotators ORDER BY name")]

    def study_fingerprint(self) -> str | None:
        """The fingerprint of the study this database belongs to (``None`` if never served)."""
        with self._connect() as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = 'study_fingerprint'").fetchone()
        return row[0] if row else None

    def answers(self) -> list[Answer]:
        """Every stored answer, in submission order."""
        with self._connect() as connection:
            rows = connection.execute("SELECT annotator, row, best, worst FROM answers ORDER BY id").fetchall()
        return [Answer(*row) for row in rows]
