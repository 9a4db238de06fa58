"""The torch-free tables of harness.upstream_names equal what the registry builds, and the name
check accepts every form build_upstream accepts and refuses the rest with its error."""

import pytest

from harness import upstream_names
from harness.catalog import registered_rows
from harness.errors import HarnessError
from harness.evaluate import build_upstream
from harness.registry import SOURCES, load_all
from upstreams.base import export_encoder, get_family


def test_registered_rows_are_the_registry_built_on_the_meta_device():
    assert list(upstream_names.REGISTERED) == registered_rows()


def test_source_forms_are_the_registered_sources():
    load_all()
    assert upstream_names.SOURCE_FORMS == {p: SOURCES.meta(p)["form"] for p in SOURCES.names()}


def test_every_accepted_form_passes_the_check(tmp_path):
    fam = get_family("hubert")
    folder = export_encoder(fam.random_encoder(fam.preset("tiny")), "hubert", tmp_path / "exp", "t")
    for name in [*upstream_names.REGISTERED_NAMES, "hf:some/dir", "s3prl:hubert:x.pt", str(folder),
                 str(folder / "upstream.json"), f"fusion:fbank+{folder}+mfcc"]:
        assert upstream_names.check_upstream_name(name, tmp_path) == name


@pytest.mark.parametrize("name, says", [
    ("nope", "unknown upstream 'nope'"),
    ("random:hubert_tinny", "Did you mean: random:hubert_tiny"),
    ("s3prll:hubert:x.pt", "unknown upstream source 's3prll:'. Did you mean: s3prl:?"),
    ("fusion:fbank+mfccc", "unknown upstream 'mfccc'. Did you mean: mfcc"),
    ("fusion:fbank", "a fusion names two or more upstreams"),
])
def test_other_names_fail_with_build_upstreams_error(tmp_path, monkeypatch, name, says):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HarnessError) as static:
        upstream_names.check_upstream_name(name)
    with pytest.raises(HarnessError) as built:
        build_upstream(name)
    assert says in str(static.value)
    assert str(static.value) == str(built.value)
