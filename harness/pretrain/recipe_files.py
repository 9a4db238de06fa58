"""Recipe files, without importing torch: the packaged names, reading a file and resolving its
`base:` chain. The CLI checks a recipe name here before harness.pretrain.recipe_load builds the
family configs (torch) or a corpus is touched."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

from harness.config import read_config_file
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


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    """`base` with `over` laid on top: mappings merge key by key (recursively); anything else,
    lists included, is replaced by `over`'s value."""
    import copy

    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_file(path, label: str) -> Dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {label}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"recipe {label}: expected a mapping at the top level")
    return dict(data)


def read_recipe(recipe: Union[str, Path], _chain: Tuple[str, ...] = ()) -> Tuple[Dict[str, Any], str]:
    """(the recipe's mapping with its `base` chain resolved, its default name).

    A recipe may start from another: `base: NAME` (a packaged recipe) or `base: FILE.yaml` (a
    path, relative to the inheriting file's folder), then only the keys that differ. The base's
    mapping and the recipe's merge with `deep_merge` (tables key by key; lists such as
    `iterations` replace the base's whole list). `name` is never inherited: a recipe without one
    is named after its file. A base may itself have a base; a cycle or an unknown base is an
    error naming the file."""
    if is_recipe_path(recipe):
        path = Path(recipe)
        check_recipe_name(path)
        label, key, folder, stem = str(path), str(path.resolve()), path.parent, path.stem
        data = _read_file(path, label) if path.suffix in (".yaml", ".yml") else read_config_file(path)
    else:
        name = str(recipe)
        if name not in available_recipes():
            raise unknown_recipe(name)
        path = resources.files("harness") / "recipes" / f"{name}.yaml"
        label, key, folder, stem = f"harness/recipes/{name}.yaml", f"harness/recipes/{name}.yaml", None, name
        data = _read_file(path, label)
    if key in _chain:
        names = [Path(c).stem for c in _chain[_chain.index(key):]] + [Path(key).stem]
        raise ConfigError(f"recipe {label}: base cycle {' -> '.join(names)}")
    if "base" not in data:
        return data, stem
    base = data.pop("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"recipe {label}: base must be a recipe name or a YAML path, got {base!r}")
    ref: Union[str, Path] = base
    if is_recipe_path(base) or Path(base).suffix in (".yaml", ".yml"):
        ref = Path(base) if Path(base).is_absolute() or folder is None else folder / base
        if not Path(ref).is_file():
            raise ConfigError(f"recipe {label}: base {base!r}: no such file ({ref})")
    elif base not in available_recipes():
        raise ConfigError(f"recipe {label}: unknown base {base!r}{suggest(base)}")
    parent, _ = read_recipe(ref, _chain + (key,))
    parent.pop("name", None)
    return deep_merge(parent, data), stem
