"""``python -m wm_hub.cli``: the ``wm-hub`` command."""

import sys

from wm_hub.cli import main

sys.exit(main())
