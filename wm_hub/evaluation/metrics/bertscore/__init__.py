"""Folder of the ``bertscore`` evaluate metric script (a package so that it installs with wm-hub)."""
