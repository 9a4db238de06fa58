import os

import pytest
import torch

# Two xdist workers on two cores: one thread each avoids oversubscription.
torch.set_num_threads(int(os.environ.get("HARNESS_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """The tiny synth corpus, generated once per test session (per xdist worker)."""
    from harness.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", seed=0, workers=1, progress=False)


def make_tone_corpus(root, n_per_class=12, classes=("aa", "bb", "cc"), bad_ids=(), text=lambda uid: "x"):
    """A corpus of noisy tones: class k is a tone at 300 * (k + 1) Hz. Written in the harness
    schema as a 'speech' subset whose `language` is the class, so LID can be learned on it;
    `text(uid)` is each utterance's transcript."""
    import numpy as np
    import soundfile as sf
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    from harness.data.corpus import save_manifests

    rng = np.random.default_rng(0)
    recs, sups = [], []
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for k, c in enumerate(classes):
        for i in range(n_per_class):
            uid = f"{c}_{i:03d}"
            split = "train" if i < n_per_class * 2 // 3 else ("dev" if i % 2 else "test")
            dur = rng.uniform(0.6, 1.4)
            t = np.arange(int(dur * 16000)) / 16000
            x = 0.3 * np.sin(2 * np.pi * 300 * (k + 1) * t) + 0.05 * rng.standard_normal(t.size)
            path = root / "audio" / f"{uid}.wav"
            sf.write(path, x.astype("float32"), 16000)
            rec = Recording.from_file(path, recording_id=uid)
            if uid in bad_ids:
                path.write_text("not audio any more")
            recs.append(rec)
            sups.append(SupervisionSegment(id=uid, recording_id=uid, start=0, duration=rec.duration, channel=0,
                                           language=c, speaker=f"spk{i % 4}", text=text(uid),
                                           custom={"split": split, "subset": "speech"}))
    save_manifests(root, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups),
                   {"name": "tones", "kind": "synth", "size": "test", "seed": 0})
    return root
