"""Benchmark tasks, one module each. This list must name every task module
(tests/unit/test_registry.py checks it)."""

import importlib

MODULES = ["pr", "asr", "ks", "sid", "asv", "lid"]

for _m in MODULES:
    importlib.import_module(f"tasks.{_m}")
