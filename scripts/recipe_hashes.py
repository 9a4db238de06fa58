"""Write the hash of every packaged recipe's resolved form to tests/unit/data/recipe_hashes.json.

Run once on a tree whose recipes are known good (before a change to how recipes are written);
tests/unit/test_recipe_inherit.py then asserts that every recipe still resolves to the same hash.
The hash is taken over `recipe_to_dict(load_recipe(name))` as sorted-key JSON: the resolved
recipe that runs and that a run folder's recipe.json saves.

    PYTHONPATH=. python scripts/recipe_hashes.py [OUT]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from harness.pretrain.recipe import recipe_to_dict
from harness.pretrain.recipe_files import available_recipes
from harness.pretrain.recipe_load import load_recipe


def resolved_hash(name: str) -> str:
    """sha256 (hex) of the resolved recipe `name` as sorted-key JSON."""
    d = recipe_to_dict(load_recipe(name))
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "tests/unit/data/recipe_hashes.json"
    table = {n: resolved_hash(n) for n in available_recipes()}
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(table)} recipe hashes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
