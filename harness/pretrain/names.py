"""Names of the packaged pre-training recipes, without importing torch: the CLI checks a recipe
name here before it loads the recipe (which builds family configs) or touches a corpus."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Tuple, Union

from harness.errors import ConfigError


def available_recipes() -> Tuple[str, ...]:
    """Names of the packaged recipes (harness/recipes/<name>.yaml)."""
    root = resources.files("harness") / "recipes"
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml")))


def is_recipe_path(recipe: Union[str, Path]) -> bool:
    """True when `recipe` names a file (a .yaml/.yml path, or anything that exists) rather than a
    packaged recipe."""
    p = Path(recipe)
    return p.suffix in (".yaml", ".yml") or p.exists()


def suggest(name: str) -> str:
    """" (did you mean a, b?)" for the packaged recipes close to `name`, or ""."""
    close = difflib.get_close_matches(name, available_recipes(), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_recipe(name: str) -> ConfigError:
    """The one-line error for a recipe name that is neither a file nor a packaged recipe."""
    return ConfigError(f"unknown recipe {name!r}{suggest(name)}: not a file, and not one of "
                       f"{', '.join(available_recipes())}")


def check_recipe_name(recipe: Union[str, Path]) -> None:
    """Raise the one-line error of an unknown recipe name; a path is checked when it is read."""
    if is_recipe_path(recipe):
        if not Path(recipe).is_file():
            raise ConfigError(f"recipe file {recipe} does not exist")
    elif str(recipe) not in available_recipes():
        raise unknown_recipe(str(recipe))


def describe_recipes() -> Tuple[str, ...]:
    """One line per packaged recipe: its name, the recipe it inherits (`base:`, or "-") and the
    first line of its header comment (what it is)."""
    root = resources.files("harness") / "recipes"
    rows = []
    for name in available_recipes():
        base, about = "-", ""
        for line in (root / f"{name}.yaml").read_text().splitlines():
            if line.startswith("#") and not about:
                about = line.lstrip("# ").strip()
            elif line.startswith("base:"):
                base = line.split(":", 1)[1].split("#")[0].strip()
        rows.append((name, base, about))
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    return tuple(f"{n.ljust(w0)}  base {b.ljust(w1)}  {a}".rstrip() for n, b, a in rows)
