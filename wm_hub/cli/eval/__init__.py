"""``wm-hub eval <benchmark>``: one module per benchmark, each declaring its task (``TASKS``)."""
