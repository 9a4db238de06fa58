"""Label quality against phone alignments (HuBERT paper, section IV-F / fairseq measure_teacher_quality).

With y the phone and z the label of a frame, from their joint frequency over all frames:
  phone purity   = sum_z max_y p(y, z)   (frame accuracy of mapping each label to its best phone)
  cluster purity = sum_y max_z p(y, z)
  PNMI           = I(y; z) / H(y)        (phone-normalised mutual information, 1 = labels say all)

Frames are the model's (its family config: `stride` and `receptive_field` in samples): frame t
covers samples [stride t, stride t + receptive_field), its phone is the alignment segment holding
its centre (HuBERT: (320 t + 200) / 16000 s). Frames no segment covers are left out. Silence
("sil" on synth) counts as a phone, as in the paper's measurements.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

SAMPLE_RATE = 16000


def frame_phones(alignment: Sequence[Sequence], n_frames: int, frames: Any) -> List[Optional[str]]:
    """The phone of each of n_frames model frames (`frames`: a family config) from
    [[phone, start_s, end_s], ...] (None where no segment covers the frame centre)."""
    hop_s, centre_s = frames.stride / SAMPLE_RATE, frames.receptive_field / 2 / SAMPLE_RATE
    segs = sorted((float(s), float(e), str(p)) for p, s, e in alignment)
    starts = np.array([s for s, _, _ in segs])
    out: List[Optional[str]] = []
    for t in range(n_frames):
        c = t * hop_s + centre_s
        j = int(np.searchsorted(starts, c, side="right")) - 1
        out.append(segs[j][2] if j >= 0 and c < segs[j][1] else None)
    return out


class QualityCounter:
    """Accumulates the joint counts of (phone, label) over utterances."""

    def __init__(self):
        self.phones: Dict[str, int] = {}
        self.pairs: Dict[Tuple[int, int], int] = {}
        self.frames = 0
        self.skipped = 0

    def add(self, phones: Sequence[Optional[str]], labels: Iterable[int]) -> None:
        labels = list(labels)
        if len(labels) != len(phones):
            raise ValueError(f"{len(phones)} phones for {len(labels)} labels")
        for p, z in zip(phones, labels):
            if p is None or z < 0:
                self.skipped += 1
                continue
            y = self.phones.setdefault(p, len(self.phones))
            self.pairs[(y, int(z))] = self.pairs.get((y, int(z)), 0) + 1
            self.frames += 1

    def result(self) -> Dict[str, float]:
        if not self.pairs:
            return {"pnmi": float("nan"), "phone_purity": float("nan"), "cluster_purity": float("nan"),
                    "frames": 0, "phones": 0, "labels_used": 0, "skipped_frames": self.skipped}
        zs = sorted({z for _, z in self.pairs})
        zpos = {z: i for i, z in enumerate(zs)}
        joint = np.zeros((len(self.phones), len(zs)), dtype=np.float64)
        for (y, z), c in self.pairs.items():
            joint[y, zpos[z]] = c
        r = label_quality_from_joint(joint)
        r.update(frames=int(self.frames), phones=len(self.phones), labels_used=len(zs), skipped_frames=self.skipped)
        return r


def label_quality_from_joint(joint: np.ndarray) -> Dict[str, float]:
    """PNMI, phone purity, cluster purity, H(phone), I(phone; label) (nats) of a (phones x labels)
    count matrix."""
    p = joint / joint.sum()
    py, pz = p.sum(1), p.sum(0)
    nz = p > 0
    h_y = float(-(py[py > 0] * np.log(py[py > 0])).sum())
    mi = float((p[nz] * np.log(p[nz] / (py[:, None] * pz[None, :])[nz])).sum())
    return {
        "pnmi": mi / h_y if h_y > 0 else float("nan"),
        "phone_purity": float(p.max(0).sum()),
        "cluster_purity": float(p.max(1).sum()),
        "h_phone_nats": h_y,
        "mi_nats": mi,
    }


def label_quality(phones: Sequence[Optional[str]], labels: Sequence[int]) -> Dict[str, float]:
    """Quality of one flat sequence of frame labels against frame phones (see module docstring)."""
    q = QualityCounter()
    q.add(phones, labels)
    return q.result()


def corpus_label_quality(utts, get_labels, frames: Any) -> Dict[str, float]:
    """Quality over utterances that carry custom["alignment"]; get_labels(uid) -> labels at the
    frame rate of `frames` (a family config)."""
    q = QualityCounter()
    n = 0
    for u in utts:
        ali = u.custom.get("alignment")
        if not ali:
            continue
        lab = np.asarray(get_labels(u.id))
        q.add(frame_phones(ali, len(lab), frames), lab)
        n += 1
    r = q.result()
    r["utterances"] = n
    return r


def codebook_usage(counts: Sequence[int]) -> Dict[str, float]:
    """How a codebook of K = len(counts) clusters is used by frame label counts: clusters used
    (count > 0), the entropy of the label distribution (bits) and its perplexity 2^H (the number
    of equally used clusters with that entropy: K when all are used equally, 1 for one label)."""
    c = np.asarray(counts, dtype=np.float64)
    p = c[c > 0] / max(c.sum(), 1.0)
    h = float(-(p * np.log2(p)).sum()) if p.size else 0.0
    return {"k": int(c.size), "clusters_used": int((c > 0).sum()), "usage_entropy_bits": h,
            "usage_perplexity": float(2.0 ** h)}
