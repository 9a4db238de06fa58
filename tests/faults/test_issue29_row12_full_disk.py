"""Issue 29, row 12: a full disk under --cache says where, how much is free and how much is needed.

The feature cache is refused before anything is written when its estimated size does not fit
(the free space is made small by shrinking what the file system reports); a short write that
numpy reports without an errno ("N requested and M written", what f051749 printed as is) is read
as a full disk with the free space and the shortfall.
"""

from __future__ import annotations

import collections
import re
import shutil

from typer.testing import CliRunner

from harness.cli import app
from harness.diskio import os_failure
from tests.conftest import make_tone_corpus


def test_row12_a_cache_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    real = shutil.disk_usage
    usage = collections.namedtuple("usage", "total used free")

    def small(path):  # the cache's file system has 1 KiB left
        u = real(path)
        return usage(u.total, u.total - 1024, 1024) if str(tmp_path / "cache") in str(path) or \
            str(path) == str(tmp_path) else u

    monkeypatch.setattr(shutil, "disk_usage", small)
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(corpus),
                                 "--steps", "2", "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    m = re.search(r"disk full at (\S+): free (\d+) MB, need (\d+) MB", lines[0])
    assert m and m[1] == str(tmp_path / "cache" / "features") and m[2] == "0"
    assert not list((tmp_path / "cache" / "features").rglob("*.npy"))


def test_row12_a_short_write_reads_as_a_full_disk(tmp_path):
    err = os_failure(OSError("4450800 requested and 524224 written"), tmp_path / "pool", "--cache")
    m = re.fullmatch(r"disk full at (\S+): free (\d+) MB, need ([\d.]+) MB more for one write; free some space "
                     r"or choose another --cache", str(err))
    assert m and m[1] == str(tmp_path / "pool") and float(m[3]) == round((4450800 - 524224) / 2**20, 1)
    assert abs(int(m[2]) - shutil.disk_usage(tmp_path).free / 2**20) < 50
