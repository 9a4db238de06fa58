"""Pre-training objectives (docs/design.md section 6): each module registers one with `@register_objective`;
this list must name every module (tests/unit/test_registry.py checks it)."""

import importlib

from harness.registry import OBJECTIVES

MODULES = ["masked_prediction", "denoising", "mshubert", "data2vec"]

for _m in MODULES:
    importlib.import_module(f"harness.pretrain.objectives.{_m}")


def get_objective(name: str):
    """The objective class registered as `name` (unknown names fail with the closest ones)."""
    return OBJECTIVES.get(name)
