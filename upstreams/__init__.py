"""Upstream model families. Each module registers its names; this list must name every module
(tests/unit/test_registry.py checks it)."""

import importlib

MODULES = ["baselines", "fusion", "hubert", "source_hf", "wavlm"]

for _m in MODULES:
    importlib.import_module(f"upstreams.{_m}")
