"""Bootstrapping the forward dynamics model from unlabelled video: motion key frames (paper section 3.2)."""
