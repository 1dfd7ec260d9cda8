"""What a ``wm-hub`` task module declares: its words, its config dataclasses and the function that runs it.

A task module of :mod:`wm_hub.cli` holds ``TASKS = (Task(...), ...)`` and imports nothing heavy at the top: the
config dataclasses are named by a function (``configs``) that the command line calls only when the task runs or its
help is asked for, so ``wm-hub --help`` reads every module without importing torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wm_hub.config_parser import ConfigParser


@dataclass(frozen=True)
class Task:
    """One ``wm-hub`` task.

    Args:
        words: The command words, e.g. ``("annotate",)`` or ``("eval", "aurora")``.
        help: One line for ``wm-hub --help``.
        configs: Returns the config dataclasses whose fields are the task's options (imported when called).
        run: Called with the parsed configs (and, when ``arguments`` adds any, a namespace of those last); returns
            the exit status.
        description: The task's ``--help`` text.
        epilog: Examples shown after the options.
        arguments: Adds the few options that are not config fields (positional inputs), if any.
        forwards_argv: ``run`` is a launcher: after the options are checked it gets the task's own command line
            first (to hand on to the process it starts), then the configs.
        own_config_flag: ``--config`` is one of the task's own options (``data build``'s builder config), not a
            YAML file of options.
    """

    words: tuple[str, ...]
    help: str
    configs: Callable[[], tuple[type, ...]]
    run: Callable[..., int]
    description: str = ""
    epilog: str = ""
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    forwards_argv: bool = False
    own_config_flag: bool = False

    @property
    def name(self) -> str:
        """The task as typed after ``wm-hub``: ``"eval aurora"``."""
        return " ".join(self.words)

    def parser(self, subparsers: argparse._SubParsersAction | None = None) -> ConfigParser:
        """The task's parser, standalone (``prog="wm-hub <words>"``) or added to ``subparsers`` under its last word."""
        from wm_hub.config_parser import ConfigParser  # imports trl: only when the task runs or explains itself

        epilog = self.epilog
        if not self.own_config_flag:
            epilog += "\n\n--config FILE.yaml sets any of these options from YAML; options given here override it."
        options = {
            "description": self.description or self.help,
            "epilog": epilog.strip(),
            "yaml_config": not self.own_config_flag,
        }
        if subparsers is None:
            parser = ConfigParser(self.configs(), prog=f"wm-hub {self.name}", **options)
        else:
            parser = subparsers.add_parser(self.words[-1], help=self.help, dataclass_types=self.configs(), **options)
        if self.arguments is not None:
            self.arguments(parser)
        return parser
