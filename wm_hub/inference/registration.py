"""``forward-dynamics`` and ``inverse-dynamics`` for ``transformers.pipeline``, registered by ``import wm_hub``.

Registering means importing ``transformers.pipelines``, which imports torch: seconds that ``wm-hub --help`` or a
push should not pay. So ``import wm_hub`` calls :func:`register_when_transformers_pipelines_loads`: if
``transformers.pipelines`` is already imported, the tasks are registered at once; otherwise a finder on
``sys.meta_path`` waits for its import (``from transformers import pipeline`` is one) and registers them as soon as
that module has run, before the caller gets it back. Either way ``import wm_hub; pipeline("forward-dynamics", ...)``
works, and nothing heavy is imported until a pipeline is asked for.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

from wm_hub.inference.tasks import FORWARD_DYNAMICS_TASK, INVERSE_DYNAMICS_TASK

PIPELINES_MODULE = "transformers.pipelines"


def register_pipelines() -> None:
    """Register ``forward-dynamics`` and ``inverse-dynamics`` with ``transformers.pipelines.PIPELINE_REGISTRY``."""
    from transformers.pipelines import PIPELINE_REGISTRY

    from wm_hub.inference.forward_dynamics import ForwardDynamicsPipeline
    from wm_hub.inference.inverse_dynamics import InverseDynamicsPipeline
    from wm_hub.inference.pipelines import WorldModelLoader

    for task, pipeline_class in (
        (FORWARD_DYNAMICS_TASK, ForwardDynamicsPipeline),
        (INVERSE_DYNAMICS_TASK, InverseDynamicsPipeline),
    ):
        registered = PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
        if registered is not pipeline_class:
            PIPELINE_REGISTRY.register_pipeline(
                task, pipeline_class=pipeline_class, pt_model=WorldModelLoader, type="multimodal"
            )


class _RegisteringLoader(importlib.abc.Loader):
    """Runs ``transformers.pipelines`` with its own loader, then registers wm-hub's tasks."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
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
