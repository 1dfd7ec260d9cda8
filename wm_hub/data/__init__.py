"""Data: the triplet schema every source is converted to (:mod:`~wm_hub.data.schema`), the builders' base, the
mixture of sources and pre-tokenisation into training sequences. Import the modules by full path."""
