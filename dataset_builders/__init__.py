"""``datasets.GeneratorBasedBuilder`` classes that turn each data origin into wm-hub triplets.

Use them from Python (``AuroraBuilder(data_dir=..., config_name="ag").download_and_prepare()``) or through
``wm-hub data build NAME --config C --data-dir DIR --out OUT``, which writes a Hub-layout folder that
``datasets.load_dataset(OUT)`` reads without wm-hub. wm-hub finds them by name through the
``wm_hub.dataset_builders`` entry points (``setup.cfg``; :mod:`wm_hub.data.builder_registry`).
"""
