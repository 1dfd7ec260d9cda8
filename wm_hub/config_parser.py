"""Command lines and YAML recipes built from config dataclasses, as TRL builds its scripts' (``TrlParser``).

Every ``wm-hub`` task and every ``recipes/*.py`` script parses its options with :class:`ConfigParser`: the options
are the fields of the task's config dataclass (``--batch_size`` and ``--batch-size`` both work), ``--config
recipe.yaml`` sets any of them from YAML and the command line overrides the file. A field's help is its
``metadata["help"]`` or, failing that, its entry in the dataclass's Google-style ``Args:`` docstring, so a config
documents its options once. :func:`parse_config` turns a bad recipe or option into one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import os
import re
import sys
import typing
from collections.abc import Iterable
from typing import Any, NoReturn

from trl import TrlParser

_ARG = re.compile(r"^(\s*)(\w+)(?: \([^)]*\))?:\s*(.*)$")
_ROLE = re.compile(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`")  # :func:`~wm_hub.x.name` -> name


def _plain(text: str) -> str:
    """Docstring markup as a terminal shows it: a Sphinx role as its last name in backticks, double backticks as
    single ones."""
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def docstring_args(kind: type) -> dict[str, str]:
    """The ``Args:`` (or ``Attributes:``) entries of a dataclass's docstring and its bases', one line each:
    ``name -> text``."""
    entries: dict[str, str] = {}
    for base in reversed(kind.__mro__[1:]):
        if base.__doc__ and dataclasses.is_dataclass(base):
            entries.update(docstring_args(base))
    doc = inspect.cleandoc(kind.__doc__ or "")  # its own: getdoc would give a base's to a class without one
    inside, indent, name = False, None, None
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Attributes:"):
            inside, indent, name = True, None, None
            continue
        if not inside:
            continue
        if line and not line[0].isspace():  # the next section
            inside = False
            continue
        match = _ARG.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent, name = len(match.group(1)), match.group(2)
            entries[name] = match.group(3).strip()
        elif name is not None and line.strip():
            entries[name] += " " + line.strip()
    return entries


class ParagraphFormatter(argparse.HelpFormatter):
    """Help text wrapped to the terminal paragraph by paragraph: the description's line breaks are kept, and lines
    that start with spaces (examples, listings) are left as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                lines.append(indent + line)
            else:
                lines.append(super()._fill_text(line, width, indent))
        return "\n".join(lines)


class ConfigParser(TrlParser):
    """A ``TrlParser`` whose options explain themselves from the config dataclasses' docstrings.

    Args:
        dataclass_types: The config dataclasses whose fields become options.
        yaml_config: ``--config FILE.yaml`` sets options from YAML (``False``: a field aliased ``--config`` takes it).
        **kwargs: ``argparse.ArgumentParser`` arguments (``prog``, ``description``, ``epilog``...); the help keeps
            their line breaks (:class:`ParagraphFormatter`).
    """

    def __init__(self, dataclass_types: type | Iterable[type] | None = None, yaml_config: bool = True, **kwargs: Any):
        kwargs.setdefault("formatter_class", ParagraphFormatter)
        kwargs.setdefault("allow_abbrev", False)  # --max-step must not quietly mean --max_steps
        self.yaml_config = yaml_config
        super().__init__(dataclass_types, **kwargs)

    def parse_args_and_config(self, args: Iterable[str] | None = None, **options: Any) -> tuple[Any, ...]:
        """TrlParser's ``--config FILE.yaml`` handling, unless ``yaml_config=False``: then ``--config`` is an option
        of the task's own (``data build``'s builder config, as ``datasets`` names configs) and is parsed as such."""
        if self.yaml_config:
            return super().parse_args_and_config(args, **options)
        return self.parse_args_into_dataclasses(args=args)

    def error(self, message: str):
        """An argparse error (type, choice, missing option) as one line, like wm-hub's own, not the usage block."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")

    def _add_dataclass_arguments(self, dtype: type) -> None:
        before = len(self._actions)
        super()._add_dataclass_arguments(dtype)
        helps = docstring_args(dtype)
        fields = {field.name: field for field in dataclasses.fields(dtype)}
        for action in self._actions[before:]:
            if action.dest not in fields or action.help == argparse.SUPPRESS:
                continue
            if action.option_strings and action.option_strings[0].startswith("--no_"):  # a True bool's off switch
                action.help = f"turn {action.option_strings[0].removeprefix('--no')[1:]} off"
                continue
            text = _plain(action.help or helps.get(action.dest, "").replace("%", "%%"))
            empty = action.default is None or action.default is False or action.default in ("", [])
            shown = not (action.required or empty or "default" in text)
            action.help = f"{text} (default: {action.default})" if shown else text


class ConfigError(SystemExit):
    """A bad recipe or option: exit status 2, and ``str()`` is the ``error: ...`` line printed for it."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


SEED_RANGE = 2**32  # numpy's seeds; torch's and Python's are wider


def parse_config(parser: ConfigParser, args: Iterable[str] | None = None) -> tuple[Any, ...]:
    """``parser.parse_args_and_config(args)``, with a bad recipe or option as one line, not a traceback.

    A missing ``--config`` file, YAML that does not parse, an unknown key (with the closest known ones) or a value a
    config refuses (its ``__post_init__`` raising ``ValueError``) ends the process with ``error: ...`` naming the
    file and the key; only the main process of an ``accelerate launch`` prints it.

    Raises:
        ConfigError: The recipe or an option is wrong (a ``SystemExit`` with exit status 2).
    """
    import yaml

    argv = []
    for arg in sys.argv[1:] if args is None else args:  # --config=FILE as --config FILE, which TrlParser reads
        argv += arg.split("=", 1) if arg.startswith("--config=") else [arg]
    config = next((argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"), None)
    where = f"recipe {config}: " if config and os.path.isfile(config) else ""
    blank = _empty_argument(parser, argv)
    if blank:  # an empty path would quietly mean the current folder, an empty name a default
        config_error(f"{blank} is blank")
    try:
        if parser.yaml_config and (argv[-1:] == ["--config"] or argv.count("--config") > 1):
            raise ValueError("--config takes one YAML file of options")
        if parser.yaml_config and config and os.path.isdir(config):
            raise ValueError(f"--config {config} is a folder: give a YAML file of options")
        if parser.yaml_config and config and os.path.isfile(config):
            _check_yaml_shapes(parser, config)
        parsed = parser.parse_args_and_config(args=argv)
        _check_seeds(parsed)
        return parsed
    except FileNotFoundError as error:
        message = f"{error.filename or config}: no such recipe file"
        fields = {field.name for kind in parser.dataclass_types for field in dataclasses.fields(kind)}
        if "data_config" in fields:  # eval idm and probe named the dataset's config --config before
            message += " (--config reads a YAML file of options; the dataset's config is --data-config)"
    except yaml.YAMLError as error:
        message = f"{where}not valid YAML: {' '.join(str(error).split())}"
    except (ValueError, TypeError) as error:
        text = str(error)
        in_recipe, on_command_line = "Unknown arguments" in text, "not used by the HfArgumentParser" in text
        unknown = re.findall(r"'--([\w-]+)(?:=[^']*)?'", text) if in_recipe or on_command_line else []
        if unknown:
            known = [field.name for kind in parser.dataclass_types for field in dataclasses.fields(kind) if field.init]
            close = {name: difflib.get_close_matches(name.replace("-", "_"), known) for name in unknown}
            if on_command_line:  # as typed: --name, suggestions in the dashed spelling
                close = {f"--{name}": [f"--{c.replace('_', '-')}" for c in close[name]] for name in unknown}
            hints = [f"{name} (did you mean {', '.join(close[name])}?)" if close[name] else name for name in close]
            kind = f"{where}unknown key(s)" if in_recipe else "unknown option(s)"
            message = f"{kind}: {'; '.join(hints)}"
        else:
            message = f"{where}{error}"
    config_error(message)


def _check_yaml_shapes(parser: ConfigParser, path: str) -> None:
    """Refuse a recipe value that is a list or mapping where a field of wm-hub's own configs takes one value, a
    number or boolean where it takes text (YAML reads ``action: 5`` as an integer and ``action: yes`` as ``True``),
    or a fraction or boolean where it takes an integer: each would reach the code as it is (argparse converts only
    text) and fail far from the recipe. Fields of transformers' and TRL's arguments are theirs to check: some take
    a list where their annotation names one string.

    Raises:
        ValueError: Naming the key (``parse_config`` adds the recipe file).
    """
    import yaml

    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle)
    if not isinstance(values, dict):  # TrlParser's own error names it
        return
    for kind in parser.dataclass_types:
        if not kind.__module__.startswith("wm_hub."):
            continue
        hints = typing.get_type_hints(kind)
        for field in dataclasses.fields(kind):
            if field.name not in values:
                continue
            value, annotation = values[field.name], str(field.type)
            takes_many = any(word in annotation for word in ("list", "List", "dict", "Dict", "Any", "tuple"))
            if not takes_many and isinstance(value, (list, dict)):
                raise ValueError(f"key {field.name}: one value is needed, got a {type(value).__name__}: {value!r}")
            scalar = _optional_of(hints[field.name])
            if scalar is str and isinstance(value, (bool, int, float)):
                kind = type(value).__name__
                raise ValueError(f"key {field.name}: text is needed, got the {kind} {value!r}: quote the value")
            if scalar is int and isinstance(value, (bool, float)):
                raise ValueError(f"key {field.name}: an integer is needed, got {value!r}")


def _check_seeds(parsed: Iterable[Any]) -> None:
    """Refuse a seed that numpy cannot take (``transformers.set_seed`` seeds numpy too), before any model loads.

    Raises:
        ValueError: Naming the seed and the range.
    """
    for config in parsed:
        seed = getattr(config, "seed", None) if dataclasses.is_dataclass(config) else None
        if isinstance(seed, int) and not 0 <= seed < SEED_RANGE:
            raise ValueError(f"seed must be in [0, {SEED_RANGE - 1}] (what numpy takes), got {seed}")


def _optional_of(hint: Any) -> Any:
    """``X`` for ``X | None`` (or ``Optional[X]``), else ``hint`` itself."""
    args = typing.get_args(hint)
    return next(arg for arg in args if arg is not type(None)) if len(args) == 2 and type(None) in args else hint


def _empty_argument(parser: ConfigParser, argv: list[str]) -> str | None:
    """The option given ``""`` on the command line (``--out ""``, ``--out=``), or ``"a positional argument"``."""
    owner, room = None, 0  # the option the next plain tokens belong to, and how many it still takes
    for arg in argv:
        if arg.startswith("--"):
            name, has_value, value = arg.partition("=")
            if has_value and not value:
                return name
            action = parser._option_string_actions.get(name)
            nargs = None if action is None else action.nargs
            owner = name
            room = 0 if has_value or nargs == 0 else {None: 1, "?": 1}.get(nargs, nargs)
            room = float("inf") if room in ("*", "+") else room
        elif room:
            if arg == "":
                return owner
            room -= 1
        elif arg == "":
            return "a positional argument"
    return None


def config_error(message: str) -> NoReturn:
    """End a recipe script on a bad recipe found after parsing (e.g. two fields that do not fit together): print
    ``error: <message>`` once (on the main process of an ``accelerate launch``) and raise :class:`ConfigError`."""
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {message}", file=sys.stderr)
    raise ConfigError(f"error: {message}")
