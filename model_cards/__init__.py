"""Jinja/Markdown templates of wm-hub's model and dataset cards (package data, read with importlib.resources)."""
