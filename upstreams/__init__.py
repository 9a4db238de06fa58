"""Upstream model families. Each module registers its names; this list must name every module
(tests/unit/test_registry.py checks it)."""

import importlib

MODULES = ["baselines", "bundled", "fusion", "hubert", "source_fairseq", "source_hf", "source_s3prl", "source_torchaudio",
           "wavlm"]

for _m in MODULES:
    importlib.import_module(f"upstreams.{_m}")
