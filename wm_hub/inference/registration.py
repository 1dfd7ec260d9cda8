"""``forward-dynamics`` and ``inverse-dynamics`` for ``transformers.pipeline``, registered by ``import wm_hub``.

Registering means importing ``transformers.pipelines``, which imports torch: seconds that ``wm-hub --help`` or a
push should not pay. So ``import wm_hub`` calls :func:`register_when_transformers_pipelines_loads`: if
``transformers.pipelines`` is already imported, the tasks are registered at once; otherwise a finder on
``sys.meta_path`` waits for its import (``from transformers import pipeline`` is one) and registers them as soon as
that module has run, before the caller gets it back. Either way ``import wm_hub; pipeline("forward-dynamics", ...)``
works, and nothing heavy is imported until a pipeline is asked for.

When it is one of wm-hub's own pipeline modules that first imports ``transformers.pipelines`` (someone imported
``wm_hub.inference.forward_dynamics`` directly), the classes to register do not exist yet: that import goes through
:func:`transformers_pipeline_base`, the finder leaves the registering to the pipeline modules, and each of them
calls :func:`register_pipelines` as its last statement (so does ``wm_hub.inference.pipelines``, which imports them).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

from wm_hub.inference.tasks import FORWARD_DYNAMICS_TASK, INVERSE_DYNAMICS_TASK

PIPELINES_MODULE = "transformers.pipelines"
_importing_for_a_pipeline_module = False


# task -> (module, class) of its pipeline
PIPELINE_CLASSES = {
    FORWARD_DYNAMICS_TASK: ("wm_hub.inference.forward_dynamics", "ForwardDynamicsPipeline"),
    INVERSE_DYNAMICS_TASK: ("wm_hub.inference.inverse_dynamics", "InverseDynamicsPipeline"),
}


def register_pipelines() -> None:
    """Register ``forward-dynamics`` and ``inverse-dynamics`` with ``transformers.pipelines.PIPELINE_REGISTRY``.

    Imports the pipeline modules that are not imported yet, unless one of them is still running (it imported this
    chain itself): then only the classes that exist are registered, and the running module calls this again as its
    last statement. Idempotent.
    """
    from transformers.pipelines import PIPELINE_REGISTRY

    # A pipeline module that is running but has not defined its class yet imported this chain: importing the other
    # one now would import it back half-done. Register what exists; that module calls this again when it is done.
    running = any(
        name in sys.modules and not hasattr(sys.modules[name], class_name)
        for name, class_name in PIPELINE_CLASSES.values()
    )
    for task, (module_name, class_name) in PIPELINE_CLASSES.items():
        module = sys.modules.get(module_name) or (None if running else importlib.import_module(module_name))
        pipeline_class = getattr(module, class_name, None)
        registered = PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
        if pipeline_class is not None and registered is not pipeline_class:
            loader = sys.modules["wm_hub.inference.pipelines"].WorldModelLoader
            PIPELINE_REGISTRY.register_pipeline(
                task, pipeline_class=pipeline_class, pt_model=loader, type="multimodal"
            )


def transformers_pipeline_base() -> type:
    """``transformers.Pipeline``, for wm-hub's pipeline modules: imported without registering the tasks now, when
    the classes are still being defined (the modules register them once they are)."""
    global _importing_for_a_pipeline_module
    _importing_for_a_pipeline_module = True
    try:
        from transformers import Pipeline
    finally:
        _importing_for_a_pipeline_module = False
    return Pipeline


class _RegisteringLoader(importlib.abc.Loader):
    """Runs ``transformers.pipelines`` with its own loader, then registers wm-hub's tasks."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        if not _importing_for_a_pipeline_module:
            register_pipelines()

    def __getattr__(self, name: str):  # resources and source lookups go to the real loader
        return getattr(self._loader, name)


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds ``transformers.pipelines`` as the other finders would, with :class:`_RegisteringLoader` around it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PIPELINES_MODULE:
            return None
        sys.meta_path.remove(self)  # once: a failed import is retried without wm-hub in the way
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def register_when_transformers_pipelines_loads() -> None:
    """Register the tasks now if ``transformers.pipelines`` is loaded, else as soon as it is."""
    if PIPELINES_MODULE in sys.modules:
        register_pipelines()
    elif not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
