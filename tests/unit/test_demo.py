"""The demo's presets name things that exist, and `--board pretrain` finds the step exports."""

from __future__ import annotations

from harness import demo
from harness.pretrain.recipe_load import load_recipe
from harness.registry import TASKS, UPSTREAMS, load_all


def test_pretrain_board_preset_names_real_recipes_tasks_and_upstreams():
    load_all()
    p = demo.PRETRAIN_BOARD
    for recipe in p["recipes"].split(","):
        assert len(load_recipe(recipe).iterations) >= p["iterations"]
    for task in p["tasks"].split(","):
        TASKS.get(task)
    for up in p["upstreams"].split(","):
        UPSTREAMS.get(up)
    assert set(demo.CURVE_TASKS) <= set(p["tasks"].split(","))
    assert set(p["seeds"]) | set(p["steps"]) <= set(p["tasks"].split(","))
    # the curve needs exports inside iteration 1's training
    assert p["export_every"] < load_recipe("hubert_small").iterations[0].train.steps


def test_step_exports_in_iteration_and_step_order(tmp_path):
    for k, step in ((2, 2000), (1, 4000), (1, 2000), (3, 2000)):
        (tmp_path / f"iter{k}" / "exports" / f"step{step:06d}").mkdir(parents=True)
    (tmp_path / "iter1" / "exports" / "step000100.tmp").touch()  # a file, not an export
    got = [p.split(str(tmp_path))[1] for p in demo.step_exports(tmp_path, 2)]
    assert got == ["/iter1/exports/step002000", "/iter1/exports/step004000", "/iter2/exports/step002000"]


def test_every_board_carries_its_controls():
    """The demo's, the pre-training board's and `harness ci`'s recipes each have a random-init twin
    of exactly their network, and the controls list starts with the un-normalised filter bank."""
    from dataclasses import asdict

    from harness import ci
    from harness.controls import FRONT_END, _network, controls, random_twin
    from upstreams.base import get_family

    load_all()
    recipes = demo.RECIPES + demo.FULL["recipes"] + [demo.PRETRAIN_BOARD["recipes"], ci.RECIPE]
    got = controls(recipes)
    assert got[0] == FRONT_END and {"random:hubert_tiny", "random:wavlm_tiny", "random:hubert_small"} <= set(got)
    for r in set(recipes):
        twin = random_twin(r)
        UPSTREAMS.get(twin)
        it = load_recipe(r).iterations[-1]
        fam, preset = twin.split(":")[1].rsplit("_", 1)
        assert _network(asdict(get_family(fam).preset(preset))) == _network(asdict(it.model))
    assert set(demo.CONTROL_TASKS) == {"pr", "asr", "ks", "sid", "asv", "sd", "ss"} and demo.CONTROL_SEEDS >= 1


def test_run_pretrainings_runs_every_recipe_from_every_seed(tmp_path, monkeypatch):
    """--pretrain-seeds: each recipe once per seed, seed 0 in runs/pretrain/<recipe> (the folder
    of every run made before seeds), seed s in runs/pretrain/<recipe>-s<s>; the seed reaches
    pretrain()."""
    from harness.pretrain import run as run_mod
    from harness.sweep import run_pretrainings

    calls = []
    monkeypatch.setattr(run_mod, "pretrain", lambda recipe, corpus, out, **kw: calls.append(
        (recipe, corpus, out, kw["pretrain_seed"], kw["export_every"])))
    lines = []
    outs = run_pretrainings(["hubert_tiny", "wavlm_tiny"], "c", tmp_path, workers=1, log=lines.append,
                            export_every=7, seeds=range(2))
    p = tmp_path / "pretrain"
    assert outs == [p / "hubert_tiny", p / "hubert_tiny-s1", p / "wavlm_tiny", p / "wavlm_tiny-s1"]
    assert calls == [("hubert_tiny", "c", p / "hubert_tiny", 0, 7), ("hubert_tiny", "c", p / "hubert_tiny-s1", 1, 7),
                     ("wavlm_tiny", "c", p / "wavlm_tiny", 0, 7), ("wavlm_tiny", "c", p / "wavlm_tiny-s1", 1, 7)]
    assert "hubert_tiny-s1 done" in lines[1]
    assert run_pretrainings(["hubert_tiny"], "c", tmp_path, workers=1, log=lines.append) == [p / "hubert_tiny"]


def test_demo_refuses_zero_pretraining_seeds(capsys):
    import pytest

    with pytest.raises(SystemExit):
        demo.main(["--pretrain-seeds", "0"])
    assert "--pretrain-seeds must be >= 1, got 0" in capsys.readouterr().err


class _InlinePool:
    """A pool that runs each job at once in the caller (so the schedule is deterministic)."""

    def __init__(self, log):
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def apply_async(self, fn, args, callback, error_callback):
        try:
            value = fn(*args)
        except Exception as e:  # noqa: BLE001 - as multiprocessing hands it to error_callback
            error_callback(e)
        else:
            callback(value)


def _overlap(pretrain_fail=False, workers=2):
    from harness.request import EvalRequest
    from harness.sweep import run_overlapped

    ran, lines, calls = [], [], []

    def pretrain(job):
        ran.append(("pretrain", job))
        if pretrain_fail:
            raise RuntimeError("diverged")
        return f"pre-training {job} done"

    def probe(req):
        ran.append((req.upstream, req.task))
        return f"{req.upstream} {req.task} ok"

    def after():
        calls.append(len(ran))
        return [EvalRequest("runs/pretrain/hubert_tiny/iter1/upstream", t, "c", "r", "k", 1) for t in ("ks", "asr")]

    jobs = [EvalRequest(u, t, "c", "r", "k", 1) for u in ("fbank", "mfcc") for t in ("ks", "asr")]
    failed = run_overlapped(["job0"], jobs, after, workers, lines.append,
                            pool_factory=lambda n: _InlinePool(lines), work=(pretrain, probe))
    return failed, ran, lines, calls


def test_run_overlapped_probes_the_pretrained_model_after_its_pretraining_and_everything_once():
    failed, ran, lines, calls = _overlap()
    # after() once, when the pre-training's result came back: one probe had started beside it
    assert failed == 0 and calls == [2]
    assert ran[0] == ("pretrain", "job0")
    probes = ran[1:]
    assert sorted(probes) == sorted([(u, t) for u in ("fbank", "mfcc", "runs/pretrain/hubert_tiny/iter1/upstream")
                                     for t in ("ks", "asr")])
    # slow tasks first, and at equal task the pre-trained upstream ahead of the hand-made features
    assert probes[:3] == [("fbank", "asr"), ("runs/pretrain/hubert_tiny/iter1/upstream", "asr"), ("mfcc", "asr")]
    assert len(lines) == 7


def test_run_overlapped_failed_pretraining_counts_and_skips_its_probes():
    failed, ran, lines, calls = _overlap(pretrain_fail=True)
    assert calls == [] and failed == 2  # the pre-training and the probes not started
    assert sorted(ran[1:]) == sorted([(u, t) for u in ("fbank", "mfcc") for t in ("ks", "asr")])
    assert any("RuntimeError: diverged" in line for line in lines)
    assert any("not started" in line for line in lines)
