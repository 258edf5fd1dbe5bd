"""Development tools kept out of the wheel: the scripted demo run and the README screenshots.

Run from the repository root, e.g. ``python -m tools.screenshots assets/``; the tests import ``tools.demo``
the same way (``python -m pytest`` puts the repository root on the path).
"""
