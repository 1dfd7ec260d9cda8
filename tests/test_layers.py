"""The package's layers import one way (docs/architecture.md), every import counted, function-level ones too."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# docs/architecture.md: models <- data <- training / inference <- bootstrap / evaluation / sandbox <- hub /
# human_eval <- the command line. A module may import its own layer or any layer below, never one above.
LAYERS = {
    "wm_hub.config_parser": 0,
    "wm_hub.atomic_io": 0,
    "wm_hub.models": 1,
    "wm_hub.data": 2,
    "wm_hub.training": 3,
    "wm_hub.inference": 3,
    "wm_hub.bootstrap": 4,
    "wm_hub.evaluation": 4,
    "wm_hub.sandbox": 4,
    "dataset_builders": 4,
    "wm_hub.hub": 5,
    "wm_hub.human_eval": 5,
    "wm_hub.demo": 6,
    "wm_hub.cli": 7,
}


def _unit(module: str) -> str | None:
    """The layer unit (a key of LAYERS) a dotted module name belongs to."""
    for unit in sorted(LAYERS, key=len, reverse=True):
        if module == unit or module.startswith(unit + "."):
            return unit
    return None


def _imports(root: Path = ROOT) -> dict[str, set[tuple[str, str]]]:
    """unit -> {(imported unit, 'file:line')} over every import statement of wm_hub and dataset_builders."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in [*root.joinpath("wm_hub").rglob("*.py"), *root.joinpath("dataset_builders").rglob("*.py")]:
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        unit = _unit(module)
        if unit is None:  # wm_hub/__init__.py: lazy attributes only, no import at load time
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            targets = {_unit(name) for name in names} - {None, unit}
            if node.__class__ is ast.ImportFrom and node.module == "wm_hub":
                targets = {t for t in targets if t != "wm_hub"}
            for target in targets:
                found[unit].add((target, f"{path.relative_to(root)}:{node.lineno}"))
    return found


def _upward(found: dict[str, set[tuple[str, str]]]) -> list[str]:
    return sorted(
        f"{where} ({unit}, layer {LAYERS[unit]}) imports {target} (layer {LAYERS[target]})"
        for unit, edges in found.items()
        for target, where in edges
        if LAYERS[target] > LAYERS[unit]
    )


def test_no_module_imports_a_layer_above_its_own():
    assert _upward(_imports()) == []


def test_units_of_one_layer_form_no_import_circle():
    graph = {unit: {target for target, _ in edges} for unit, edges in _imports().items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(unit for unit in graph if reaches(unit, unit, {unit}))
    assert circles == []


def test_the_check_sees_function_level_imports(tmp_path):
    # An import inside a function counts like one at the top: it cannot hide an upward arrow from this check.
    models = tmp_path / "wm_hub" / "models"
    models.mkdir(parents=True)
    (models / "base.py").write_text("import os\n\n\ndef f():\n    from wm_hub.inference.generation import g\n")
    assert _upward(_imports(tmp_path)) == [
        "wm_hub/models/base.py:5 (wm_hub.models, layer 1) imports wm_hub.inference (layer 3)"
    ]
