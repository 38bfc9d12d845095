"""Benchmarks: `python -m bench` (or `make bench`).

Every figure is measured in the same run on the same machine and set against an anchor
measured alongside it (raw nats-py, a bare endpoint, a plain write), so the ratios mean
something on any hardware. Nothing here asserts a speed; the goals are printed, not enforced.
"""
