"""Data: the triplet schema every source is converted to, and pre-tokenisation into training sequences."""

from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet

__all__ = ["TRIPLET_FEATURES", "make_triplet"]
