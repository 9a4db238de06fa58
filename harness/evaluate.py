"""`harness eval`: resolve upstream, task and corpus; run the lr x seed grid of probes into run
folders; skip finished runs. The probe itself lives in harness/probe.py."""

from __future__ import annotations

import dataclasses
import difflib
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness import results
from harness.catalog import upstream_facts
from harness.config import EvalConfig, ProbeConfig, check_device, config_hash, merge, read_config_file, to_dict
from harness.diskio import os_errors
from harness.environment import environment
from harness.errors import ConfigError, HarnessError
from harness.registry import SOURCES, TASKS, UPSTREAMS, load_all
from harness.request import EvalRequest
from upstreams.base import CONFIG_FILE, Upstream

DEFAULT_SEED = 1337


def build_upstream(name_or_path: str) -> Upstream:
    """A registered upstream name, a folder written by `harness pretrain` / `export`,
    `fusion:A+B+...` of those (upstreams/fusion.py: aligned to the finest frame rate), or
    `<source>:<rest>` of a registered source (harness.registry.SOURCES, e.g. a checkpoint made
    by another toolkit)."""
    from harness.upstream_names import fusion_members, unknown_upstream
    from upstreams.fusion import FusionUpstream

    load_all()
    if name_or_path in UPSTREAMS:
        return UPSTREAMS.get(name_or_path)()
    members = fusion_members(name_or_path)
    if members is not None:
        return FusionUpstream([build_upstream(m) for m in members])
    prefix, _, rest = name_or_path.partition(":")
    if rest and prefix in SOURCES:
        return with_weights_tag(check_finite(SOURCES.get(prefix)(rest), name_or_path))
    p = Path(name_or_path)
    if (p / CONFIG_FILE).is_file() or name_or_path.endswith((".json", ".safetensors")):
        from upstreams.base import WEIGHTS_FILE, load_exported

        folder = p if p.is_dir() else p.parent
        return check_finite(load_exported(folder), str(folder / WEIGHTS_FILE))
    raise unknown_upstream(name_or_path)


def check_finite(up: Upstream, where: str) -> Upstream:
    """`up` when every floating-point weight is finite; else one line naming `where` (the file or
    source read) and the first tensor holding NaN or infinity: such weights give NaN features,
    which would otherwise surface as a probe that never learns."""
    import torch

    for key, t in up.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            n = int((~torch.isfinite(t)).sum())
            raise HarnessError(f"{where}: weight {key} holds {n} NaN or infinite value(s) of {t.numel()}")
    return up


def with_weights_tag(up: Upstream) -> Upstream:
    """A checkpoint read from a path (`hf:DIR`, `fairseq:FILE`, ...) is named after its file or
    folder, and two different models may share that name (two folders called `hf`): the name
    gets `@` + 8 hex digits of its weights' content hash (parameters and buffers, not the path), so
    its runs, cache and board row are its own, and one model under two folder names is one model."""
    import hashlib

    h = hashlib.sha256()
    for key, t in sorted(up.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    up.spec = dataclasses.replace(up.spec, name=f"{up.spec.name}@{h.hexdigest()[:8]}")
    return up


def build_task(name: str):
    load_all()
    return TASKS.get(name)()


def resolve_config(task, profile: str, config_file: Optional[str] = None,
                   overrides: Optional[Dict[str, Any]] = None) -> EvalConfig:
    """defaults < task profile < config file < CLI overrides (flat ProbeConfig/EvalConfig keys)."""
    cfg = EvalConfig(profile=profile, probe=merge(ProbeConfig(), task.probe_defaults(profile), "probe."))
    if config_file:
        data = read_config_file(config_file)
        data.pop("launcher", None)  # where jobs run (harness/launch.py), not what they compute
        task_tables = data.pop("tasks", {}) or {}
        check_task_tables(task_tables, config_file)
        cfg = merge(cfg, data)
        if task.name in task_tables:
            cfg = dataclasses.replace(cfg, probe=merge(cfg.probe, task_tables[task.name], f"tasks.{task.name}."))
    if overrides:
        probe_keys = {f.name for f in dataclasses.fields(ProbeConfig)}
        top = {k: v for k, v in overrides.items() if k not in probe_keys}
        probe = {k: v for k, v in overrides.items() if k in probe_keys}
        cfg = merge(cfg, {**top, "probe": probe} if probe else top)
    if not cfg.probe.lrs:
        raise ConfigError("config key 'probe.lrs' must hold at least one learning rate, got none")
    if cfg.profile not in task.profiles:
        raise ConfigError(f"config key 'profile' must be one of {', '.join(task.profiles)} for task "
                          f"{task.name!r}, got {cfg.profile!r}")
    heads = getattr(task, "heads", ("default",))
    if cfg.probe.head not in heads:  # checked before a run folder is made, not when the head is built
        raise ConfigError(f"config key 'probe.head' of task {task.name!r} must be one of {', '.join(heads)}, "
                          f"got {cfg.probe.head!r}")
    return cfg


def check_task_tables(tables: Any, where: str) -> None:
    """A config file's `tasks:` section: a table per registered task name (a misspelt name is an
    error with the closest names, not a table silently ignored)."""
    load_all()
    if not isinstance(tables, dict):
        raise ConfigError(f"config file {where}: 'tasks' must be a table of task names, got {tables!r}")
    known = TASKS.names()
    for name, table in tables.items():
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"config file {where}: unknown task {name!r} under 'tasks'{hint}; "
                              f"known: {', '.join(known)}")
        if not isinstance(table, dict):
            raise ConfigError(f"config file {where}: 'tasks.{name}' must be a table of probe keys, got {table!r}")


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """The lr x seed grid of one (upstream, task, config) and where each run lives.

    Attributes:
        task: the task object.
        upstream: the built upstream.
        config: the resolved EvalConfig.
        corpus: the loaded corpus.
        weights_hash: the upstream's weights hash (names its feature cache).
        config_hash: the hash in every run folder's name (all but lr and seed).
        runs: (lr, seed, run folder) for every point of the grid, lrs outer, seeds inner.
        corpus_fingerprint: the corpus's content fingerprint (data.corpus.content_fingerprint).
    """

    task: Any
    upstream: Upstream
    config: EvalConfig
    corpus: Any
    weights_hash: str
    config_hash: str
    runs: List[Tuple[float, int, Path]]
    corpus_fingerprint: str = ""


def plan_runs(request: EvalRequest) -> RunPlan:
    """Build the request's upstream, task and corpus, resolve its config (unless the request
    carries it: `EvalRequest.resolve`) and name the run folder of every (lr, seed): what
    `evaluate` runs and what a launcher checks before submitting (results.is_finished). Seeds are
    the first seed (the config's, or the request's), +1, ..."""
    from harness.data.corpora import load_corpus
    from harness.data.corpus import content_fingerprint

    task = request.task
    task_obj = build_task(task)
    # the variant the task probes (Upstream.for_task: fbank and mfcc without CMVN on KS and SID)
    up = build_upstream(request.upstream).for_task(task_obj)
    cfg = request.resolve(task_obj).config
    if cfg.lexicon:
        task_obj.set_lexicon(cfg.lexicon)
    corp = load_corpus(request.corpus, cache_dir=request.cache / "corpora", skip_bad=cfg.skip_bad)
    spec = up.spec
    whash = up.weights_hash()
    cfp = content_fingerprint(corp)
    # lr and seed name the folder; the hash covers everything else that changes a result, the
    # upstream's weights included (a re-trained export keeps its readable name)
    hashed = to_dict(dataclasses.replace(cfg, probe=dataclasses.replace(cfg.probe, lrs=(), seed=0)))
    for key, default in (("cache_dtype", "float16"), ("extract_dtype", "float32")):
        if hashed.get(key) == default:
            del hashed[key]  # the default: the hashes of runs made before the key existed hold
    chash = config_hash(hashed,
                        extra={"upstream": spec.name, "upstream_weights": whash, "task": task,
                               **task_obj.identity(), "corpus": corp.name,
                               "corpus_meta": {k: corp.meta.get(k) for k in ("size", "seed", "version")},
                               # which data, not only its name and size (two LibriSpeech folders)
                               "corpus_fingerprint": cfp})
    grid = [(lr, cfg.probe.seed + i) for lr in cfg.probe.lrs for i in range(request.seeds)]
    runs = [(lr, seed, results.run_dir(request.runs, corp.name, spec.name, task, lr, seed, chash)) for lr, seed in grid]
    return RunPlan(task_obj, up, cfg, corp, whash, chash, runs, cfp)


def evaluate(request: EvalRequest, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Evaluate one upstream on one task: one run folder per (lr, seed) of the request. Returns
    the results (finished ones included) of this (upstream, task, config)."""
    from harness.features import prepare_sources
    from harness.probe import train_probe

    t_all = time.time()
    p = plan_runs(request)
    task, corpus, cache_dir = request.task, request.corpus, request.cache
    task_obj, up, cfg, corp, whash, chash = p.task, p.upstream, p.config, p.corpus, p.weights_hash, p.config_hash
    spec = up.spec
    plan, done = [], []
    for lr, seed, folder in p.runs:
        res, damaged = results.read_result(folder)
        if res is not None:
            done.append(res)
            log(f"skip {spec.name} / {task} lr={lr:g} seed={seed}: finished in {folder}")
        else:
            if damaged:
                log(f"{folder / results.RESULT} is damaged ({damaged}); running it again")
            plan.append((lr, seed, folder))
    if not plan:
        return done

    check_device(cfg.device)  # here, in the job: the submitting host may have no GPU
    from harness.extraction import check_extract_dtype

    slower = check_extract_dtype(cfg.extract_dtype, cfg.device)
    if slower:
        log(slower)
    splits = task_obj.prepare(corp)
    t0 = time.time()
    sources = prepare_sources(up, splits.as_dict(), splits.pools, cache_dir / "features", cfg.cache_budget_gb,
                              device=cfg.device, skip_bad=cfg.skip_bad, log=log, weights_hash=whash,
                              cache_dtype=cfg.cache_dtype, extract_dtype=cfg.extract_dtype)
    feat_s = time.time() - t0
    subsets = task_obj.subsets(splits, cfg.profile)  # None: one probe per run (every task but mono_asr)
    skipped = dict(corp.meta.get("skipped_bad") or {})  # left out of the manifests (--skip-bad)
    for s in sources.values():
        skipped.update(s.skipped.items)
    if skipped:
        log(f"skipped {len(skipped)} bad audio file(s) (--skip-bad): e.g. {next(iter(skipped.values()))}")

    out = list(done)
    for lr, seed, folder in plan:
        pcfg = dataclasses.replace(cfg.probe, seed=seed)
        resolved = {**to_dict(dataclasses.replace(cfg, probe=pcfg)), "lr": lr, "upstream": spec.name,
                    "upstream_spec": dataclasses.asdict(spec), "task": task, "corpus": corpus}
        with os_errors(folder, "--runs"):
            folder.mkdir(parents=True, exist_ok=True)
            results.atomic_write_json(folder / "config.json", resolved)
            if skipped:
                results.atomic_write_json(folder / "skipped.json", skipped)
        t1 = time.time()
        desc = f"{spec.name} / {task} lr={lr:g} seed={seed}"
        if subsets is None:
            outcome = train_probe(task_obj, splits, sources, spec, pcfg, lr, log=log, desc=desc)
        else:
            outcome = train_subset_probes(task_obj, subsets, sources, spec, pcfg, lr, log=log, desc=desc)
        res = {
            "run_id": f"{results.slug(spec.name)}/{task}/{folder.name}",
            "corpus": corp.name, "corpus_kind": corp.kind, "corpus_size": corp.meta.get("size"),
            "corpus_fingerprint": p.corpus_fingerprint,
            "upstream": spec.name, "upstream_family": spec.family, "num_layers": spec.num_layers,
            "upstream_facts": upstream_facts(up),  # what the board's summary shows (it never opens weights)
            "task": task, "profile": cfg.profile, "lr": lr, "seed": seed, "config_hash": chash,
            **task_obj.identity(), "corpus_version": corpus_version(corp),
            "departures": list(task_obj.departures),
            "git_sha": results.git_sha(), "versions": results.versions(),
            "primary_metric": task_obj.primary_metric, "higher_is_better": task_obj.higher_is_better,
            "metrics": {"dev": outcome.dev, "test": outcome.test}, "extra": outcome.extra,
            "layer_weights": outcome.layer_weights, "best_step": outcome.best_step,
            "history": outcome.history, "layer_norm": pcfg.layer_norm, "nan_steps": outcome.nan_steps, "skipped_bad": len(skipped),
            "learned_nothing": outcome.learned_nothing, "trivial_dev": outcome.trivial_dev,
            "environment": environment(), "skipped_files": skipped,
            "timing": {"features_s": round(feat_s, 2), "train_s": round(outcome.train_s, 2),
                       "total_s": round(time.time() - t1 + feat_s, 2), "steps": pcfg.steps},
            "finished_at": results.now_iso(),
        }
        with os_errors(folder, "--runs"):
            results.atomic_write_json(folder / results.RESULT, res)
        m = task_obj.primary_metric
        nothing = (f"; learned nothing: dev never beat the trivial answer's {outcome.trivial_dev:.2f}"
                   if outcome.learned_nothing else "")
        log(f"{spec.name} / {task} lr={lr:g} seed={seed}: dev {m} {outcome.dev[m]:.2f}, "
            f"test {m} {outcome.test[m]:.2f} ({outcome.train_s:.0f} s){nothing}")
        out.append(res)
    log(f"{spec.name} / {task}: {len(plan)} run(s) in {time.time() - t_all:.0f} s")
    return out


def corpus_version(corpus) -> str:
    """The version of a corpus's content definition: the synth generator ("synth-v2"), a real
    corpus's manifest "version", or "unversioned"."""
    return str(corpus.meta.get("version") or corpus.meta.get("generator") or "unversioned")


def train_subset_probes(task, subsets: Dict[str, Any], sources: Dict[str, Any], spec, cfg: ProbeConfig, lr: float,
                        log: Callable[[str], None] = print, desc: str = "probe"):
    """The `Task.subsets` hook: one probe per subset (e.g. per language for mono_asr), combined
    into one outcome for the run.

    Each subset's feature sources are views of the split's (same cache, fewer ids). Combined:
    dev/test metrics = task.combine_subsets of the subsets' values (by default their unweighted
    mean, NaNs left out); layer weights = the mean of
    the subsets' softmax weights and layer norms; extra = per_<label>_<metric> (test) and
    per_<label>_layer_weights / per_<label>_best_step, label = task.subset_label; best_step = the
    latest of the subsets' best steps; history rows carry their subset's name. The subsets' own
    extras are kept too: a value all subsets share once, dicts (e.g. per-language tables) merged.
    """
    import numpy as np

    from harness.featurizer import corrected_contributions
    from harness.features import FeatureSource
    from harness.probe import ProbeOutcome, train_probe

    def view(src: FeatureSource, utts) -> FeatureSource:
        return FeatureSource(utts, pools=src.pools, upstream=src.upstream, device=src.device, skip_bad=src.skip_bad,
                             cache_dtype=src.cache_dtype, extract_dtype=src.extract_dtype)

    outs = {}
    for name, sub in subsets.items():
        srcs = {s: view(sources[s], utts) for s, utts in sub.as_dict().items()}
        outs[name] = train_probe(task, sub, srcs, spec, cfg, lr, log=log, desc=f"{desc} [{name}]")

    def mean_metrics(split: str) -> Dict[str, float]:
        keys = sorted({k for o in outs.values() for k in getattr(o, split)})
        return {k: task.combine_subsets({n: getattr(o, split).get(k, float("nan")) for n, o in outs.items()}, subsets)
                for k in keys}

    label = task.subset_label
    w = np.mean([o.layer_weights["softmax"] for o in outs.values()], axis=0).tolist()
    norms = np.mean([o.layer_weights["layer_norm"] for o in outs.values()], axis=0).tolist()
    test = mean_metrics("test")
    extra: Dict[str, Any] = {}
    for key in sorted({k for o in outs.values() for k in o.extra}):
        vals = [o.extra[key] for o in outs.values() if key in o.extra]
        if all(v == vals[0] for v in vals):
            extra[key] = vals[0]
        elif all(isinstance(v, dict) for v in vals):
            extra[key] = {k: v for d in vals for k, v in d.items()}
    extra.update({f"per_{label}_{k}": {n: o.test.get(k) for n, o in outs.items()} for k in test})
    extra[f"per_{label}_layer_weights"] = {n: o.layer_weights["softmax"] for n, o in outs.items()}
    extra[f"per_{label}_best_step"] = {n: o.best_step for n, o in outs.items()}
    marks = [o.learned_nothing for o in outs.values()]
    if any(m is not None for m in marks):
        extra[f"per_{label}_learned_nothing"] = {n: o.learned_nothing for n, o in outs.items()}
    trivial = [o.trivial_dev for o in outs.values() if o.trivial_dev is not None]
    return ProbeOutcome(
        dev=mean_metrics("dev"), test=test, best_step=max(o.best_step for o in outs.values()),
        layer_weights={"softmax": w, "layer_norm": norms, "corrected": corrected_contributions(w, norms)},
        extra=extra, train_s=sum(o.train_s for o in outs.values()),
        nan_steps=sum(o.nan_steps for o in outs.values()),
        history=[{"subset": n, **h} for n, o in outs.items() for h in o.history],
        # the run learned nothing when none of its probes did (each subset's mark is in extra)
        trivial_dev=float(np.mean(trivial)) if trivial else None,
        learned_nothing=all(marks) if None not in marks else None,
    )


def resolve_corpus(spec: str, log: Callable[[str], None] = print) -> str:
    """`synth` alone means the default small synth corpus, generated on first use."""
    if spec in ("synth", "synth:small", "synth:tiny", "synth:medium"):
        size = spec.split(":")[1] if ":" in spec else "small"
        path = Path("data/synth") / size
        if not (path / "corpus.json").exists():
            from harness.data.synth import generate

            log(f"generating the synth corpus ({size}) in {path}")
            generate(path, size=size, seed=0)
        return str(path)
    return spec
