import pathlib

import pytest

import tasks
import upstreams
from harness.errors import HarnessError
from harness.registry import FAMILIES, OBJECTIVES, TASKS, UPSTREAMS, load_all

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOT_MODULES = {"__init__", "base", "heads", "metrics"}


@pytest.mark.parametrize("pkg", [upstreams, tasks])
def test_import_list_names_every_module(pkg):
    files = {p.stem for p in (ROOT / pkg.__name__).glob("*.py")}
    # e.g. hubert_modules; a listed module (lid_ctc beside lid) is a task, not a helper
    helpers = {f for f in files if "_" in f and f.split("_")[0] in files and f not in pkg.MODULES}
    assert files - NOT_MODULES - helpers == set(pkg.MODULES)


def test_objective_import_list_names_every_module():
    import harness.pretrain.objectives as objectives

    files = {p.stem for p in (ROOT / "harness" / "pretrain" / "objectives").glob("*.py")}
    assert files - {"__init__", "base"} == set(objectives.MODULES)
    assert set(OBJECTIVES.names()) == {"masked_prediction", "denoising", "mshubert", "data2vec"}


def test_every_family_registers_its_random_presets():
    load_all()
    for fam in ("hubert", "wavlm"):
        family = FAMILIES.get(fam)
        for preset in family.presets:
            assert f"random:{fam}_{preset}" in UPSTREAMS
    with pytest.raises(HarnessError, match="Did you mean: wavlm"):
        FAMILIES.get("wavlmm")


def test_expected_names_registered():
    load_all()
    for name in ("fbank", "mfcc", "random:hubert_tiny", "random:wavlm_tiny", "random:wavlm_base"):
        assert name in UPSTREAMS
    assert {"pr", "asr", "ks", "sid", "asv", "lid"} <= set(TASKS.names())


def test_unknown_name_suggests_closest():
    load_all()
    with pytest.raises(HarnessError, match="Did you mean: fbank"):
        UPSTREAMS.get("fbnk")
    with pytest.raises(HarnessError, match="asr"):
        TASKS.get("asrr")


def test_corpus_loader_list_names_every_module():
    from harness.data.corpora import LOADER_MODULES, corpus_kinds

    files = {p.stem for p in (ROOT / "harness" / "data").glob("corpora_*.py")}
    assert {f"harness.data.{f}" for f in files} == set(LOADER_MODULES)
    kinds = corpus_kinds()
    assert list(kinds)[0] == "synth"
    assert set(kinds) == {"synth", "librispeech", "voxceleb1", "speechcommands", "libri2mix", "librimix_sd",
                          "fleurs", "commonvoice", "mlsuperb"}
    assert all(m["layout"] for m in kinds.values())
