"""Chores every package shares, in one place: atomic writes and file locks (:mod:`chores.files`), the git
state of the code (:mod:`chores.git`), finite numbers (:mod:`chores.values`), Python bytecode kept in our cache
where the environment forbids writing it (:mod:`chores.bytecode`).

Imports nothing else of the project and no torch, ray, optuna or plotly (a test checks it), so that
``trainer``, ``search`` and ``reports`` can all use it.
"""
