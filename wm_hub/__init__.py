"""wm-hub: world models from unified vision-language models, the Hugging Face way.

Importing the package registers the ``forward-dynamics`` and ``inverse-dynamics`` tasks of
``transformers.pipeline`` (see :mod:`wm_hub.inference.pipelines`).
"""

__version__ = "0.1.0.dev0"

from wm_hub.inference.pipelines import register_pipelines  # noqa: E402
from wm_hub.models import Backbone, load_backbone  # noqa: E402

register_pipelines()

__all__ = ["Backbone", "__version__", "load_backbone"]
