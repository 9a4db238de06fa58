"""Score functions on the docs/protocol.md section 4 inputs, board-relative scores, seed intervals."""

import math

import numpy as np
import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.scores import (
    SUPERB_PAPER_METRICS,
    SUPERB_REFERENCES,
    WAVLM_PAPER_METRICS,
    mean_ci95,
    relative_score,
    superb_score,
    wavlm_paper_score,
)

ORDER = [("pr", "per"), ("asr", "wer"), ("ks", "acc"), ("qbe", "mtwv"), ("sid", "acc"), ("asv", "eer"),
         ("sd", "der"), ("er", "acc"), ("ic", "acc"), ("sf", "f1"), ("sf", "cer")]


def as_metrics(values):
    return dict(zip(ORDER, values))


# docs/protocol.md section 4 (QbE MTWV as the raw value, not x100)
HUBERT_BASE = as_metrics([5.41, 6.42, 96.30, 0.0736, 81.42, 5.11, 5.88, 64.92, 98.34, 88.53, 25.20])
WAVLM_BASE_PLUS = as_metrics([4.07, 5.64, 96.69, 0.0990, 86.84, 4.26, 4.07, 67.98, 99.16, 89.73, 21.54])
FBANK_PAPER = as_metrics([82.01, 23.18, 8.63, 0.0058, 8.5e-4, 9.56, 10.05, 35.39, 9.10, 69.64, 52.94])


def test_metric_sets():
    assert set(SUPERB_PAPER_METRICS) == set(ORDER) == set(WAVLM_PAPER_METRICS)
    assert len(WAVLM_PAPER_METRICS) == 11
    assert ("ss", "si_sdri") in SUPERB_REFERENCES and ("ss", "si_sdri") not in SUPERB_PAPER_METRICS


def test_superb_score_protocol_values():
    assert superb_score(HUBERT_BASE) == pytest.approx(941.0, abs=0.05)
    assert superb_score(WAVLM_BASE_PLUS) == pytest.approx(1078.1, abs=0.05)


def test_superb_score_reference_points():
    at_fbank = {k: (r.fbank / 100 if k == ("qbe", "mtwv") else r.fbank) for k, r in SUPERB_REFERENCES.items()}
    at_sota = {k: (r.sota / 100 if k == ("qbe", "mtwv") else r.sota) for k, r in SUPERB_REFERENCES.items()}
    assert superb_score(at_fbank) == pytest.approx(0.0, abs=1e-9)
    assert superb_score(at_sota) == pytest.approx(1000.0)
    # SF's two metrics weigh half each: moving only SF CER to SOTA gives 1000 / 10 / 2
    half = {**at_fbank, ("sf", "cer"): 21.76}
    assert superb_score(half) == pytest.approx(50.0)
    assert superb_score(at_sota, tasks=("ss",)) == pytest.approx(1000.0)


def test_superb_score_rejects_prescaled_mtwv_and_missing_metrics():
    with pytest.raises(HarnessError, match="raw MTWV"):
        superb_score({**HUBERT_BASE, ("qbe", "mtwv"): 7.36})
    partial = {k: v for k, v in HUBERT_BASE.items() if k[0] != "ic"}
    with pytest.raises(HarnessError, match="ic acc"):
        superb_score(partial)
    with pytest.raises(HarnessError, match="ic acc"):
        wavlm_paper_score(partial)


def test_wavlm_paper_score_protocol_values():
    assert wavlm_paper_score(HUBERT_BASE) == pytest.approx(80.8, abs=0.05)
    assert wavlm_paper_score(WAVLM_BASE_PLUS) == pytest.approx(82.8, abs=0.05)
    assert wavlm_paper_score(FBANK_PAPER) == pytest.approx(40.5, abs=0.05)


def test_relative_score():
    assert relative_score(50.0, zero=50.0, best=90.0, higher_is_better=True) == 0.0
    assert relative_score(90.0, zero=50.0, best=90.0, higher_is_better=True) == pytest.approx(1000.0)
    assert relative_score(70.0, zero=50.0, best=90.0, higher_is_better=True) == pytest.approx(500.0)
    # lower is better (e.g. WER): fbank 40 -> 0, best 10 -> 1000, 25 -> 500, worse than fbank < 0
    out = relative_score([40.0, 10.0, 25.0, 55.0], zero=40.0, best=10.0, higher_is_better=False)
    np.testing.assert_allclose(out, [0.0, 1000.0, 500.0, -500.0])
    assert math.isnan(relative_score(3.0, zero=5.0, best=5.0, higher_is_better=False))
    with pytest.raises(ValueError):
        relative_score(1.0, zero=40.0, best=60.0, higher_is_better=False)


def test_mean_ci95_by_hand():
    x = [10.0, 12.0, 17.0]
    mean, half = mean_ci95(x)
    s = math.sqrt(((10 - 13) ** 2 + (12 - 13) ** 2 + (17 - 13) ** 2) / 2)  # sqrt(13)
    assert mean == pytest.approx(13.0)
    assert half == pytest.approx(4.302652729911275 * s / math.sqrt(3))  # t_{0.975, 2}
    m2, h2 = mean_ci95([14.0, 18.0])
    assert (m2, h2) == (pytest.approx(16.0), pytest.approx(12.706204736174698 * 2.0))  # t_{0.975, 1} * s / sqrt 2
    m1, h1 = mean_ci95([7.5])
    assert m1 == 7.5 and math.isnan(h1)
    assert mean_ci95([3.0, 3.0]) == (3.0, 0.0)
    assert all(math.isnan(v) for v in mean_ci95([]))
