"""Folder of the ``bleu`` evaluate metric script (a package so that it installs with wm-hub)."""
