"""Name -> factory registries for upstreams and tasks.

Modules register themselves with a decorator; the packages `upstreams` and `tasks` import their
modules from an explicit list (a test checks that the list names every file), so registration
never depends on import side effects elsewhere.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


class Registry:
    """A mapping from names to factories with helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable] = {}
        self._meta: Dict[str, Dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering `name`; `meta` = facts known without building the object (a
        source's `form`, e.g. "s3prl:NAME:FILE", shown in the unknown-upstream error)."""
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return deco

    def meta(self, name: str) -> Dict[str, Any]:
        self.get(name)  # unknown names fail with suggestions
        return dict(self._meta[name])

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str) -> Callable:
        if name not in self._items:
            raise unknown_name(self.kind, name, self.names())
        return self._items[name]


def unknown_name(kind: str, name: str, known) -> HarnessError:
    """The one-line error for a name not in `known`, with up to three close names."""
    # 0.6: a looser cutoff suggests unrelated names (a random: model for any path)
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return HarnessError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}")


#: every registered task name, known without importing the task modules (and torch with them), so
#: that `harness list tasks` and a misspelt --task answer at once; tests/unit/test_cli_imports.py
#: checks that it equals the registry once the modules are loaded
TASK_NAMES = ("asr", "asr_lid_10min", "asr_lid_1h", "asv", "ks", "lid", "lid_ctc_10min", "lid_ctc_1h",
              "ml_asr_10min", "ml_asr_1h", "mono_asr_10min", "mono_asr_1h", "pr", "sd", "sid", "ss")


def check_task_name(name: str) -> str:
    """`name` if it is a task (TASK_NAMES), else the registry's unknown-task error."""
    if name not in TASK_NAMES:
        raise unknown_name("task", name, TASK_NAMES)
    return name


UPSTREAMS = Registry("upstream")
TASKS = Registry("task")
FAMILIES = Registry("model family")
OBJECTIVES = Registry("pre-training objective")
#: upstream sources: "<prefix>:<rest>" names (e.g. hf:DIR) -> a function rest -> Upstream
SOURCES = Registry("upstream source")
#: corpus kinds: "<name>:DIR" -> a loader (path, cache_dir, skip_bad=...) -> Corpus; meta: aliases
#: (other prefixes accepted) and layout (what the folder holds), shown in help and errors
CORPORA = Registry("corpus kind")

register_upstream = UPSTREAMS.register
register_task = TASKS.register
register_family = FAMILIES.register
register_objective = OBJECTIVES.register
register_source = SOURCES.register
register_corpus = CORPORA.register


def load_all() -> None:
    """Import the upstream (and model family) and task packages so that their registries are
    filled (pre-training objectives fill theirs when harness.pretrain.objectives is imported)."""
    import tasks  # noqa: F401
    import upstreams  # noqa: F401
