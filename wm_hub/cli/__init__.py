"""The ``wm-hub`` command: one subcommand per user task, thin over the library.

Training and annotation at scale run as ``accelerate launch recipes/<stage>.py --config recipes/<model>/<stage>.yaml``;
everything else is a ``wm-hub`` subcommand. ``wm-hub <task> --help`` explains each one.

Each task lives in a module of this package (or of a subpackage, for a group such as ``wm-hub eval``), found at
start-up, so a new task is one new module. A module declares ``TASKS`` (:class:`~wm_hub.cli._tasks.Task`: the
command words, the config dataclasses whose fields are the options, the function that runs it). Task logic lives in
the library, never here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from wm_hub.cli._tasks import Task

# Task groups: `wm-hub <group> <task>`; the one-line help of the group.
GROUPS = {
    "data": "build triplet datasets (Hub layout) and inspect them",
    "eval": "evaluate models and predictions (AURORA-BENCH, IDM text metrics, spatial reasoning)",
    "human-eval": "blind best/worst human evaluation: build a study, serve it, score it (paper Table 5)",
    "push": "publish a model or synthetic trajectories to the Hugging Face Hub (one commit, idempotent)",
    "sandbox": "fit the sandbox tokenizer, pretrain the sandbox base, run the sandbox study",
    "train": "fine-tune an IDM or FDM from a YAML recipe under accelerate launch (as `trl sft` runs its script)",
}
DESCRIPTION = (
    "World models from unified vision-language models (Chameleon/Anole, Liquid, Emu3): an inverse dynamics model "
    "bootstraps a forward dynamics model. Run `wm-hub <task> --help` for each task."
)


def command_modules() -> list:
    """The task modules of this package and its subpackages, in name order (none starting with ``_``)."""
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}.")
        if not any(part.startswith("_") for part in info.name.split("."))
    )
    return [importlib.import_module(name) for name in names]


def tasks() -> dict[tuple[str, ...], Task]:
    """Every config-built task, by its command words (reads the modules, imports no config)."""
    return {task.words: task for module in command_modules() for task in getattr(module, "TASKS", ())}


def build_parser(light: bool = False) -> argparse.ArgumentParser:
    """The ``wm-hub`` argument parser with one subparser per task.

    Args:
        light: Give each config-built task only its one-line help, without importing its configs (what
            ``wm-hub --help`` prints); ``False`` builds every task's full parser.
    """
    from wm_hub import __version__

    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
    if not light:  # the task parsers are ConfigParsers (trl's TrlParser), which the light help does not import
        from wm_hub.config_parser import ConfigParser

        parser_class = ConfigParser
    parser = argparse.ArgumentParser(prog="wm-hub", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"wm-hub {__version__}")
    subparsers = parser.add_subparsers(title="tasks", metavar="<task>", required=True, parser_class=parser_class)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, task in tasks().items():
        if len(words) == 2 and words[0] not in groups:
            group = subparsers.add_parser(words[0], help=GROUPS[words[0]], description=GROUPS[words[0]])
            title = f"{words[0]} tasks"
            groups[words[0]] = group.add_subparsers(
                title=title, metavar=f"<{title[:-1]}>", required=True, parser_class=parser_class
            )
        where = groups[words[0]] if len(words) == 2 else subparsers
        if light:
            where.add_parser(words[-1], help=task.help)
        else:
            task.parser(where)
    return parser


def path_error(error: OSError) -> str:
    """One line for a path that is the wrong kind of thing (a file where a folder goes, or the reverse) or is not
    writable: the error every task can meet at its ``--out``, said the same way for all of them."""
    path = error.filename2 or error.filename
    if isinstance(error, FileExistsError):
        return f"{path} is a file, and a folder is needed there"
    if isinstance(error, IsADirectoryError):
        return f"{path} is a folder, and a file is needed there"
    if isinstance(error, NotADirectoryError):
        return f"{path}: a part of this path is a file, not a folder"
    return f"{path}: permission denied"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wm-hub`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = tasks()
    for count in (2, 1):
        task = known.get(tuple(argv[:count]))
        if task is not None:
            from wm_hub.config_parser import parse_config

            configs = parse_config(task.parser(), argv[count:])
            try:
                return task.run(argv[count:], *configs) if task.forwards_argv else task.run(*configs)
            except (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
                raise SystemExit(f"error: {path_error(error)}") from None
            except KeyboardInterrupt:  # Ctrl-C: outputs are written atomically, and long tasks resume
                print(
                    f"\ninterrupted `wm-hub {' '.join(argv[:count])}`: no half-written file is left (key frames, "
                    "annotation, evaluation and training go on from where they stopped when rerun the same way)",
                    file=sys.stderr,
                )
                return 130
    parser = build_parser(light=True)
    parser.parse_args(argv)  # --help, --version, or an unknown task or group without its task: argparse exits
    parser.error(f"no task {' '.join(argv)!r}")
