"""One evaluation request: what `harness eval`, the worker pool (harness/sweep.py) and the launcher
(harness/launch.py) carry, checked when made and resolved once.

A request names one (upstream, task) on a corpus and how to probe it: the profile, the config file,
flat config overrides, the learning rates, the seeds. `resolve()` turns it into the EvalConfig its
runs use (defaults < task profile < config file < overrides, lrs and seed: harness.evaluate.
resolve_config) and keeps it on the request, so a request passed on (to a pool worker, to a
launched job) is not resolved again. Imports no torch: the command line builds and checks one
before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from harness.config import EvalConfig, ProbeConfig, check_count, merge
from harness.errors import ConfigError, HarnessError

#: config keys a request holds as its own fields, never in `overrides`: each value has one channel
OWN_KEYS = {"lrs": "lrs", "seed": "seed", "profile": "profile"}


@dataclass(frozen=True)
class EvalRequest:
    """One `harness.evaluate.evaluate` call: by default the task's whole lr grid x `seeds` seeds
    (the worker pool); the launcher makes one request per grid point (`point`).

    Attributes:
        upstream, task, corpus: what to evaluate, as `harness eval` takes them (the corpus as a
            spec: a folder or `<kind>:<path>`).
        runs, cache: the run store and the cache folder.
        seeds: seeds per lr, counted up from the first seed.
        lrs: the learning rates, replacing the config's grid (one lr: a single run per seed);
            None: the grid the task, profile and config file give. The only channel of the lr.
        seed: the first seed; None: the config's (1337).
        profile: "quick" or "paper" (the task's probe defaults).
        config_file: a YAML/TOML file, as `harness eval --config`.
        overrides: flat ProbeConfig/EvalConfig keys over the config file, as the CLI's flags give
            them (steps, device, cache_dtype, extract_dtype, skip_bad, lexicon, ...); not lrs, seed
            or profile, which are fields of their own.
        threads: torch threads of the job's process (None: leave as is; the pool sets 1, the
            launcher its jobs' CPU cores).
        config: the resolved EvalConfig (`resolve`); None until then. A request that carries one is
            never resolved again.
    """

    upstream: str
    task: str
    corpus: str
    runs: Path
    cache: Path
    seeds: int = 1
    lrs: Optional[Tuple[float, ...]] = None
    seed: Optional[int] = None
    profile: str = "quick"
    config_file: Optional[str] = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    threads: Optional[int] = None
    config: Optional[EvalConfig] = None

    def __post_init__(self):
        for name in ("upstream", "task", "corpus"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name} must be a non-empty name, got {getattr(self, name)!r}")
        check_count("seeds", self.seeds)
        if not isinstance(self.overrides, Mapping):
            raise ConfigError(f"overrides must be a table of config keys, got {self.overrides!r}")
        for key, own in OWN_KEYS.items():
            if key in self.overrides:
                raise ConfigError(f"config override {key!r}: give it as the request's {own} (one channel for it)")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be an integer >= 1 or None, got {self.threads!r}")
        # the probe config's own coercion and checks: the same one-line messages as a config file's
        if self.lrs is not None:
            lrs = merge(ProbeConfig(), {"lrs": self.lrs}, "probe.").lrs
            if not lrs:
                raise ConfigError("config key 'probe.lrs' must hold at least one learning rate, got none")
            object.__setattr__(self, "lrs", lrs)
        if self.seed is not None:
            object.__setattr__(self, "seed", merge(ProbeConfig(), {"seed": self.seed}, "probe.").seed)
        object.__setattr__(self, "runs", Path(self.runs))
        object.__setattr__(self, "cache", Path(self.cache))
        object.__setattr__(self, "overrides", dict(self.overrides))  # a copy: the caller's dict may change
        if self.config is not None:
            probe = self.config.probe
            if (self.lrs is not None and probe.lrs != self.lrs) or (self.seed is not None and probe.seed != self.seed):
                raise ConfigError(f"the resolved config (lrs {probe.lrs}, seed {probe.seed}) is not the request's "
                                  f"(lrs {self.lrs}, seed {self.seed})")

    def config_overrides(self) -> Dict[str, Any]:
        """The flat keys resolution applies last: `overrides`, then lrs and the first seed."""
        return {**self.overrides, **({"lrs": self.lrs} if self.lrs is not None else {}),
                **({"seed": self.seed} if self.seed is not None else {})}

    def resolve(self, task: Any = None) -> "EvalRequest":
        """This request with its EvalConfig resolved; itself when it already holds one.

        Args:
            task: the built task (harness.evaluate.build_task(self.task)), when the caller has it.

        The config depends on the task, profile, config file, overrides, lrs and seed only, so a
        resolved request may be given another upstream or corpus (dataclasses.replace) and stays
        resolved.

        Raises:
            ConfigError: an unknown key, a bad value, an empty lr grid, a profile or head the task
                lacks (one line).
        """
        if self.config is not None:
            return self
        from harness import evaluate

        task = task if task is not None else evaluate.build_task(self.task)
        cfg = evaluate.resolve_config(task, self.profile, self.config_file, self.config_overrides())
        return dataclasses.replace(self, config=cfg)

    def point(self, lr: float, seed: int) -> "EvalRequest":
        """The one-run request of grid point (lr, seed) of this resolved request: what a launched
        job receives (its config is this one with that lr and seed, not resolved again)."""
        if self.config is None:
            raise HarnessError(f"{self.describe()}: a grid point of a request that is not resolved")
        probe = dataclasses.replace(self.config.probe, lrs=(lr,), seed=seed)
        return dataclasses.replace(self, lrs=(lr,), seed=seed, seeds=1,
                                   config=dataclasses.replace(self.config, probe=probe))

    def describe(self) -> str:
        """`upstream / task`, plus the lr and seed of a one-point request."""
        point = "".join([f" lr={self.lrs[0]:g}" if self.lrs and len(self.lrs) == 1 else "",
                         f" seed={self.seed}" if self.seed is not None and self.seeds == 1 else ""])
        return f"{self.upstream} / {self.task}{point}"
