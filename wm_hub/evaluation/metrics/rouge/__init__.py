"""Folder of the ``rouge`` evaluate metric script (a package so that it installs with wm-hub)."""
