"""Benchmark tasks, one module each. This list must name every task module
(tests/unit/test_registry.py checks it)."""

import importlib

MODULES = ["pr", "asr", "ks", "sid", "asv", "lid", "sd", "ss", "mono_asr", "ml_asr", "lid_ctc", "asr_lid"]

for _m in MODULES:
    importlib.import_module(f"tasks.{_m}")
