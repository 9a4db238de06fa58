"""A run folder's identity (out/recipe.json) and the reuse of another folder's finished iterations.

recipe.json pins the resolved recipe, the corpus and its split sizes: a re-run in the same folder
must match it (a config field added since matches while left at its default), and a run whose
recipe starts with the same iterations on the same corpus may link in those iterations.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Union

from harness.data.corpora import load_corpus
from harness.data.corpus import Utterance
from harness.errors import HarnessError
from harness.pretrain.recipe import Recipe, recipe_hash, recipe_to_dict
from harness.pretrain.recipe_load import load_recipe
from harness.pretrain.utterances import SPLITS, select_utterances
from harness.results import atomic_write_json, now_iso


def run_identity(rec: Recipe, corpus: str, utts: Dict[str, List[Utterance]]) -> dict:
    """What a run folder's recipe.json pins: the resolved recipe, the corpus and its split sizes."""
    return {"recipe": recipe_to_dict(rec), "corpus": str(corpus), "train_utterances": len(utts["train"]),
            "dev_utterances": len(utts["dev"])}


def shared_iterations(a: Recipe, b: Recipe) -> int:
    """How many leading iterations recipes a and b have in common (same data and iteration
    configs: the same run would produce the same models)."""
    if a.data != b.data:
        return 0
    n = 0
    while n < min(len(a.iterations), len(b.iterations)) and a.iterations[n] == b.iterations[n]:
        n += 1
    return n


def reuse_iterations(recipe: Union[str, Path], corpus: str, out: Path, others: Sequence[Path],
                     log: Callable[[str], None] = print, pretrain_seed: int = 0) -> int:
    """Before running `recipe` in `out`: link in the finished leading iterations of another run
    folder (of `others`) whose recipe starts with the same iterations on the same corpus (e.g.
    every variant of an ablation shares the reference's HuBERT iteration 1). Files are hard
    links where the file system allows (finished stages are never rewritten). Returns the number
    of iterations reused (0: nothing matched, or `out` already had them). `pretrain_seed`: the
    seed `out` is run with (a run of another seed differs in its seeds, so never matches)."""
    import shutil

    rec = load_recipe(recipe, pretrain_seed=pretrain_seed)
    c = load_corpus(corpus)
    ident = run_identity(rec, corpus, {s: select_utterances(c, rec.data, getattr(rec.data, f"{s}_split")) for s in SPLITS})
    new = json.loads(json.dumps(ident))
    best, source = 0, None
    for other in others:
        path = Path(other) / "recipe.json"
        if Path(other).resolve() == Path(out).resolve() or not path.is_file():
            continue
        old = json.loads(path.read_text())
        if any(old.get(k) != new[k] for k in ("corpus", "train_utterances", "dev_utterances")) or \
                not _matches(old["recipe"]["data"], new["recipe"]["data"], rec.data):
            continue
        n, oi, ni = 0, old["recipe"]["iterations"], new["recipe"]["iterations"]
        while (n < min(len(oi), len(ni)) and _matches(oi[n], ni[n], rec.iterations[n])
               and (Path(other) / f"iter{n + 1}" / "summary.json").is_file()):
            n += 1
        if n > best:
            best, source = n, Path(other)
    reused = 0
    for k in range(1, best + 1):
        dst = Path(out) / f"iter{k}"
        if (dst / "summary.json").is_file():
            continue
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(source / f"iter{k}", dst, copy_function=_link_or_copy)
        reused += 1
    if reused:
        log(f"{rec.name}: reusing iterations 1-{best} of {source} (same corpus, data and iteration configs)")
    return reused


def _link_or_copy(src, dst):
    import os
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def check_run_folder(out: Path, ident: dict, rec: Recipe) -> None:
    path = out / "recipe.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if not same_run(old, ident, rec):
            raise HarnessError(f"{out} holds a pre-training run of another recipe or corpus "
                               f"({old.get('recipe', {}).get('name')} on {old.get('corpus')}); "
                               "choose another --out or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    # the hash is saved beside the identity, not in it: folders made before it was saved still match
    atomic_write_json(path, {**ident, "recipe_hash": recipe_hash(rec), "created": now_iso()})


def same_run(old: dict, ident: dict, rec: Recipe) -> bool:
    """True when a run folder's saved identity `old` (recipe.json) is `ident` (of `rec`). A field
    added to the configs after that run was made is absent from `old`; it matches when `rec`
    leaves it at its default (the run was made with what the default now is)."""
    new = json.loads(json.dumps(ident))
    return _matches({k: old.get(k) for k in new}, new, {"recipe": rec})


def _matches(old, new, obj) -> bool:
    if isinstance(new, dict) and isinstance(old, dict):
        fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        for k, v in new.items():
            child = obj.get(k) if isinstance(obj, dict) else getattr(obj, k, None)
            if k in old:
                if not _matches(old[k], v, child):
                    return False
            elif k not in fields or _field_default(fields[k]) != child:
                return False
        return set(old) <= set(new)
    if isinstance(new, list) and isinstance(old, list):
        items = list(obj) if isinstance(obj, (list, tuple)) else [None] * len(new)
        return len(old) == len(new) and all(_matches(a, b, c) for a, b, c in zip(old, new, items))
    return old == new


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
