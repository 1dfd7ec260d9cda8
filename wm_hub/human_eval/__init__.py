"""Blind human evaluation of next-observation predictions (paper Section 4.3.1, Table 5, Appendix I).

:mod:`~wm_hub.human_eval.study` builds a study folder, :mod:`~wm_hub.human_eval.app` serves it (Flask),
:mod:`~wm_hub.human_eval.storage` keeps the answers (SQLite), :mod:`~wm_hub.human_eval.scoring` scores them.
"""
