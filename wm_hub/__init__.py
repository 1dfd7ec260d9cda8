"""wm-hub: world models from unified vision-language models, the Hugging Face way.

Importing the package registers the ``forward-dynamics`` and ``inverse-dynamics`` tasks of
``transformers.pipeline`` (:mod:`wm_hub.inference.registration`) and imports nothing heavy: torch and transformers
load when a model, a pipeline or a trainer is first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wm_hub.inference.registration import register_when_transformers_pipelines_loads

__version__ = "0.1.0.dev0"

# Public name -> the module that defines it, imported on first access.
_EXPORTS = {"Backbone": "wm_hub.models.base", "load_backbone": "wm_hub.models.loading"}

if TYPE_CHECKING:
    from wm_hub.models.base import Backbone
    from wm_hub.models.loading import load_backbone

register_when_transformers_pipelines_loads()


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'wm_hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["Backbone", "__version__", "load_backbone"]
