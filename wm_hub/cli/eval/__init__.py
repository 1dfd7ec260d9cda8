"""``wm-hub eval <benchmark>``: one module per benchmark in this package, each with ``register(tasks)``."""

from __future__ import annotations

import importlib
import pkgutil


def register(subparsers) -> None:
    """Add the ``eval`` task and, under it, every benchmark module of this package (name order)."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate models and predictions (AURORA-BENCH, IDM text metrics, spatial reasoning)",
        description="Evaluate world models the way the paper does. Run `wm-hub eval <benchmark> --help`.",
    )
    tasks = parser.add_subparsers(title="benchmarks", metavar="<benchmark>", required=True)
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{__name__}.{name}").register(tasks)
