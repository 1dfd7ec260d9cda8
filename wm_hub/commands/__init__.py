"""``wm-hub`` tasks beyond the model and data ones, one module per task (or group of tasks).

Each public module defines ``register(subparsers)``, which adds its parser(s) to the ``wm-hub`` subparsers and sets
``func`` (``args -> exit code``) as :mod:`wm_hub.cli` does. :func:`wm_hub.cli.command_modules` imports every
module here whose name does not start with ``_``, so keep heavy imports (torch, transformers) inside ``func``:
``wm-hub --help`` imports them all.
"""
