"""LibriMix loaders (harness/data/corpora_librimix.py) on tiny trees in the real layouts:
Libri2Mix wav16k/min (separation) and SUPERB's Kaldi-style diarization data dirs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.data.corpora import load_corpus, parse_spec
from harness.errors import HarnessError

SR = 16000
MIX_IDS = {
    "train-100": ["19-198-0001_26-495-0004", "103-1240-0003_1235-135887-0017"],
    "dev": ["1272-128104-0000_2428-83705-0012"],
    "test": ["1089-134686-0000_121-121726-0001"],
}


def _wav(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, subtype="PCM_16")


def _power_db_ratio(a: Path, b: Path) -> float:
    xa, _ = sf.read(str(a), dtype="float64")
    xb, _ = sf.read(str(b), dtype="float64")
    return 10 * np.log10(np.mean(xb ** 2) / np.mean(xa ** 2))


def make_libri2mix(root: Path, metrics_for=("train-100",)) -> Path:
    """<root>/Libri2Mix/wav16k/min/{part}/{mix_clean,s1,s2}/*.wav + metadata CSVs whose paths
    name another machine (as the generated ones do)."""
    mdir = root / "Libri2Mix" / "wav16k" / "min"
    rng = np.random.default_rng(0)
    for part, ids in MIX_IDS.items():
        rows, metrics = [], []
        for k, mid in enumerate(ids):
            n = int((1.0 + 0.5 * k) * SR)
            s1 = 0.1 * rng.standard_normal(n)
            s2 = rng.uniform(0.02, 0.2) * rng.standard_normal(n)
            for sub, x in (("s1", s1), ("s2", s2), ("mix_clean", s1 + s2)):
                _wav(mdir / part / sub / f"{mid}.wav", x)
            far = f"/home/someone/Libri2Mix/wav16k/min/{part}"
            rows.append([mid, f"{far}/mix_clean/{mid}.wav", f"{far}/s1/{mid}.wav",
                         f"{far}/s2/{mid}.wav", n])
            metrics.append([mid, 1.5 + k, -1.5 - k])  # marker values: the loader must take them
        (mdir / "metadata").mkdir(parents=True, exist_ok=True)
        with open(mdir / "metadata" / f"mixture_{part}_mix_clean.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"])
            w.writerows(rows)
        if part in metrics_for:
            with open(mdir / "metadata" / f"metrics_{part}_mix_clean.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["mixture_ID", "source_1_SNR", "source_2_SNR"])
                w.writerows(metrics)
    return mdir


def test_libri2mix(tmp_path):
    mdir = make_libri2mix(tmp_path / "data")
    c = load_corpus(f"libri2mix:{tmp_path / 'data'}", cache_dir=tmp_path / "cache")
    assert (c.name, c.kind) == ("libri2mix", "real")
    assert {u.subset for u in c.utterances} == {"mix"}
    by = {u.id: u for u in c.utterances}
    assert set(by) == {m for ids in MIX_IDS.values() for m in ids}
    for part, split in (("train-100", "train"), ("dev", "dev"), ("test", "test")):
        for k, mid in enumerate(MIX_IDS[part]):
            u = by[mid]
            cu = u.custom
            assert u.split == split and cu["part"] == part and cu["mode"] == "min"
            assert (u.text, u.speaker, u.language) == (None, None, "en")
            assert u.path == str(mdir.resolve() / part / "mix_clean" / f"{mid}.wav")
            assert cu["sources"] == [str(mdir.resolve() / part / s / f"{mid}.wav") for s in ("s1", "s2")]
            assert all(Path(p).is_file() for p in cu["sources"])
            assert cu["source_speakers"] == [h.split("-")[0] for h in mid.split("_")]
            assert u.duration == pytest.approx(1.0 + 0.5 * k, abs=1e-4)
            if part == "train-100":  # from the metrics CSV (source_2_SNR)
                assert cu["rel_level_db"] == -1.5 - k
            else:  # measured from the two files
                assert cu["rel_level_db"] == pytest.approx(
                    _power_db_ratio(*[Path(p) for p in cu["sources"]]), abs=1e-3)
    assert by["19-198-0001_26-495-0004"].custom["source_speakers"] == ["19", "26"]
    # the min folder itself is accepted too, and a bare path gets a hint
    c2 = load_corpus(f"librimix:{mdir}", cache_dir=tmp_path / "cache2")
    assert sorted(u.id for u in c2.utterances) == sorted(by)
    assert parse_spec(f"Libri2Mix:{mdir}")[0] == "libri2mix"
    with pytest.raises(HarnessError, match="libri2mix:"):
        load_corpus(str(tmp_path / "data"))


def test_libri2mix_errors(tmp_path):
    mdir = make_libri2mix(tmp_path / "a")
    (mdir / "metadata" / "mixture_dev_mix_clean.csv").unlink()
    with pytest.raises(HarnessError, match="mixture_dev_mix_clean.csv is missing"):
        load_corpus(f"libri2mix:{tmp_path / 'a'}", cache_dir=tmp_path / "c1")
    mdir = make_libri2mix(tmp_path / "b")
    gone = mdir / "test" / "s2" / f"{MIX_IDS['test'][0]}.wav"
    gone.unlink()
    with pytest.raises(HarnessError, match=str(gone)):
        load_corpus(f"libri2mix:{tmp_path / 'b'}", cache_dir=tmp_path / "c2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="is not a Libri2Mix folder"):
        load_corpus(f"libri2mix:{tmp_path / 'empty'}", cache_dir=tmp_path / "c3")


# s3prl's LibriMix diarization prep: one RTTM line per source segment, tab-separated
SD = {
    "train": {"19-198-0001_26-495-0004": (6.0, [("19", 0.5, 3.0), ("26", 2.5, 5.5)]),
              "103-1240-0003_1235-135887-0017": (4.0, [("1235", 0.2, 1.0), ("103", 0.1, 3.9),
                                                       ("1235", 2.0, 3.5)])},
    "dev": {"1272-128104-0000_2428-83705-0012": (3.0, [("1272", 0.0, 1.0), ("2428", 1.5, 2.5)])},
    "test": {"1089-134686-0000_121-121726-0001": (3.0, [("121", 0.3, 2.8), ("1089", 0.4, 2.0)])},
}


def make_sd(root: Path, absolute_wavs=("dev",)) -> Path:
    rng = np.random.default_rng(1)
    for split, recs in SD.items():
        d = root / split
        d.mkdir(parents=True, exist_ok=True)
        scp, seg, u2s, r2d, rttm = [], [], [], [], []
        for rid, (dur, segs) in recs.items():
            wav = root / "wavs" / split / f"{rid}.wav"
            _wav(wav, 0.1 * rng.standard_normal(int(dur * SR)))
            scp.append(f"{rid} {wav if split in absolute_wavs else wav.relative_to(root)}")
            r2d.append(f"{rid} {dur}")
            for spk, s, e in segs:
                sid = f"{spk}-{rid}_{int(s * 1000):06d}_{int(e * 1000):06d}"
                seg.append(f"{sid} {rid} {s} {e}")
                u2s.append(f"{sid} {spk}")
                rttm.append(f"SPEAKER\t{rid}\t1\t{s}\t{e - s}\t<NA>\t<NA>\t{spk}\t<NA>")
        for name, lines in (("wav.scp", scp), ("segments", seg), ("utt2spk", u2s),
                            ("reco2dur", r2d), ("rttm", rttm)):
            (d / name).write_text("\n".join(lines) + "\n")
    return root


def test_librimix_sd(tmp_path):
    root = make_sd(tmp_path / "sd")
    c = load_corpus(f"librimix_sd:{root}", cache_dir=tmp_path / "cache")
    assert (c.name, c.kind) == ("librimix_sd", "real")
    by = {u.id: u for u in c.utterances}
    assert set(by) == {rid for recs in SD.values() for rid in recs}
    for split, recs in SD.items():
        for rid, (dur, segs) in recs.items():
            u = by[rid]
            assert u.split == split and u.subset == "conv" and u.duration == pytest.approx(dur)
            want = sorted([[s, a, b] for s, a, b in segs], key=lambda x: (x[1], x[2]))
            assert u.custom["segments"] == [[s, pytest.approx(a), pytest.approx(b)] for s, a, b in want]
            assert u.custom["speakers"] == list(dict.fromkeys(s for s, _, _ in want))
            assert Path(u.path).is_file()
    # overlap ratio: time with both speakers / time with at least one
    assert by["19-198-0001_26-495-0004"].custom["overlap_ratio"] == pytest.approx(0.5 / 5.0)
    assert by["103-1240-0003_1235-135887-0017"].custom["overlap_ratio"] == pytest.approx(2.3 / 3.8, abs=1e-3)
    assert by["103-1240-0003_1235-135887-0017"].custom["speakers"] == ["103", "1235"]
    assert by["1272-128104-0000_2428-83705-0012"].custom["overlap_ratio"] == 0.0
    with pytest.raises(HarnessError, match="librimix_sd:"):
        load_corpus(str(root))


def test_librimix_sd_errors(tmp_path):
    root = make_sd(tmp_path / "a")
    (root / "dev" / "rttm").unlink()
    with pytest.raises(HarnessError, match=r"dev has no rttm"):
        load_corpus(f"librimix_sd:{root}", cache_dir=tmp_path / "c1")
    root = make_sd(tmp_path / "b")
    (root / "wavs" / "test" / "1089-134686-0000_121-121726-0001.wav").unlink()
    with pytest.raises(HarnessError, match=r"test/wav.scp:1: audio of 1089-134686-0000_121-121726-0001 not found"):
        load_corpus(f"librimix_sd:{root}", cache_dir=tmp_path / "c2")
    root = make_sd(tmp_path / "c")
    (root / "train" / "wav.scp").write_text("x sox a.wav -t wav - |\n")
    with pytest.raises(HarnessError, match="piped"):
        load_corpus(f"librimix_sd:{root}", cache_dir=tmp_path / "c3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="not a LibriMix diarization data folder"):
        load_corpus(f"librimix_sd:{tmp_path / 'empty'}", cache_dir=tmp_path / "c4")
