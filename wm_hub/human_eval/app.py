"""The annotation web app: a Flask app with server-rendered HTML forms (works without JavaScript).

Pages:

- ``GET /``: the paper's instructions and criteria, and a form to start or resume as a named annotator;
  ``POST /start`` registers the name and redirects to the annotator's own link ``/a/<name>``.
- ``GET /a/<name>``: the annotator's next unanswered row (instruction, input image, the anonymous outputs "Model
  1..N", criteria, best and worst choices) with progress "Row i of N"; a thank-you page when all are done. The link
  is the session: opening it again (another day, another browser, after a server restart) resumes.
- ``POST /a/<name>/<row>``: one answer. Best and worst must be given and differ, else the row is shown again
  (HTTP 400) with a visible message; a stored answer redirects (303) to the next row; a second answer to the same
  row is not counted (the first stands) and the next row says so.
- ``GET /images/<path>``: the study's images (only the ``images/`` folder is served, never ``key.json``).
- ``GET /health``: ``{"status": "ok", "rows": N, "answers": M}``.

:func:`serve` runs the app with Flask's threaded server (``wm-hub human-eval serve``, :class:`ServeConfig`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, abort, redirect, render_template, request, send_from_directory, url_for

from wm_hub.human_eval.storage import Answer, AnswerStore, check_annotator
from wm_hub.human_eval.study import ANSWERS_FILE, IMAGES_DIR, StudyRow, load_study

NOTES = {"duplicate": "That row had already been answered: your first answer was kept."}


@dataclass
class ServeConfig:
    """Where ``wm-hub human-eval serve`` serves a study.

    Args:
        study: The study folder written by ``wm-hub human-eval build`` (its ``key.json`` is never read).
        host: Address to listen on (``0.0.0.0`` in a container).
        port: TCP port (7860 is a Space's).
        db: The answers database (default ``<study>/answers.sqlite``); put it on persistent storage when the study
            folder is not (e.g. ``/data`` on a Space).
    """

    study: str | Path | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    db: str | Path | None = None

    def __post_init__(self) -> None:
        if not self.study:
            raise ValueError("ServeConfig: study is required (the study folder)")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")


def create_app(study_dir: str | Path, db_path: str | Path | None = None) -> Flask:
    """The annotation app of one study.

    Args:
        study_dir: A folder written by :func:`wm_hub.human_eval.study.build_study` (``key.json`` is not read).
        db_path: The answers database (default ``<study_dir>/answers.sqlite``); put it on persistent storage when
            the study folder is not (e.g. ``/data`` on a Space).

    Returns:
        The Flask app; ``app.config["STUDY"]`` and ``app.config["STORE"]`` hold the study and the answer store.

    Raises:
        FileNotFoundError: No ``study.json`` in ``study_dir``.
        ValueError: ``study.json`` is malformed, or the database belongs to another study or cannot be opened
            (a folder, a file that is not SQLite, a missing parent folder).
    """
    study = load_study(study_dir)
    db_path = Path(db_path or Path(study_dir) / ANSWERS_FILE)
    try:
        store = AnswerStore(db_path, study.fingerprint)
    except sqlite3.Error as error:
        raise ValueError(f"{db_path}: cannot open the answers database there ({error})") from None
    app = Flask(__name__)
    app.config.update(STUDY=study, STORE=store)
    positions = range(1, study.num_outputs + 1)

    def row_page(name: str, row: StudyRow, done: int, error: str | None = None, note: str | None = None, **form):
        return render_template(
            "row.html",
            study=study,
            annotator=name,
            row=row,
            number=done + 1,
            positions=positions,
            error=error,
            note=note,
            chosen=form,
        )

    def known_name(name: str) -> str:
        try:
            name = check_annotator(name)
        except ValueError:
            abort(404)
        if name not in store.annotators():
            abort(404)
        return name

    @app.get("/")
    def start():
        return render_template("start.html", study=study, error=None, name="")

    @app.post("/start")
    def start_annotator():
        name = request.form.get("name", "")
        try:
            name = check_annotator(name)
        except ValueError as error:
            return render_template("start.html", study=study, error=str(error), name=name), 400
        store.add_annotator(name)
        return redirect(url_for("annotate", name=name), code=303)

    @app.get("/a/<name>")
    def annotate(name: str):
        name = known_name(name)
        answered = store.answered(name)
        remaining = [row for row in study.rows if row.row not in answered]
        if not remaining:
            return render_template("done.html", study=study, annotator=name, total=len(study.rows))
        return row_page(name, remaining[0], len(answered), note=NOTES.get(request.args.get("note", "")))

    @app.post("/a/<name>/<row_key>")
    def answer(name: str, row_key: str):
        name = known_name(name)
        row = study.row(row_key)
        if row is None:
            abort(404)
        answered = store.answered(name)
        if row.row in answered:
            return redirect(url_for("annotate", name=name, note="duplicate"), code=303)
        choices = {}
        for field in ("best", "worst"):
            value = request.form.get(field, "")
            choices[field] = int(value) if value.isdigit() and int(value) in positions else None
        error = None
        if choices["best"] is None or choices["worst"] is None:
            missing = " and ".join(f"the {field.upper()}" for field, value in choices.items() if value is None)
            error = f"Please select {missing} model."
        elif choices["best"] == choices["worst"]:
            error = (
                f"The best and the worst model must differ: you chose Model {choices['best']} for both. "
                "Please choose again."
            )
        if error:
            return row_page(name, row, len(answered), error=error, **choices), 400
        stored = store.record(Answer(name, row.row, choices["best"], choices["worst"]))
        return redirect(url_for("annotate", name=name, note=None if stored else "duplicate"), code=303)

    @app.get("/images/<path:filename>")
    def image(filename: str):
        return send_from_directory(study.path / IMAGES_DIR, filename, max_age=3600)

    @app.get("/health")
    def health():
        return {"status": "ok", "rows": len(study.rows), "answers": len(store.answers())}

    return app


def serve(config: ServeConfig) -> None:
    """Serve the study's annotation app until the process is stopped, after printing where.

    Raises:
        FileNotFoundError: No ``study.json`` in the study folder.
        ValueError: A malformed study, or an answers database that belongs to another study or cannot be opened.
    """
    app = create_app(config.study, db_path=config.db)
    where = f"http://{config.host}:{config.port}/"
    print(f"Serving {config.study} on {where} (answers in {app.config['STORE'].path})", flush=True)
    app.run(host=config.host, port=config.port, threaded=True, debug=False, use_reloader=False)
