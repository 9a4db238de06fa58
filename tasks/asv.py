"""ASV: speaker verification (s3prl downstream/sv_voxceleb1, configs/amsoftmax.yaml). A speaker
classifier with AM-softmax (s 30, m 0.4) is trained on the training speakers; trials between
held-out speakers are scored by the cosine of the L2-normalised relu(linear1(stats)) embeddings
(tasks.heads_speaker.XVectorHead). EER is primary; minDCF is normalised, at P_target 0.01 and
C_miss = C_fa = 1 (tasks.metrics.eer_and_mindcf; saved with the run). SUPERB has no ASV dev set;
on synth the dev trial list (held-out speakers disjoint from the test ones) selects the
checkpoint, and tables say so."""

from __future__ import annotations

import torch

from harness.registry import register_task
from tasks.base import FEATURE_CACHE_CROPS, Metric, pools_by_subset_split, require, Splits, Task
from tasks.heads import HeadWithLoss
from tasks.heads_speaker import AMSoftmax, ECAPAHead, XVectorHead
from tasks.base_lr import superb_lr_grid
from tasks.metrics import DCF_C_FA, DCF_C_MISS, DCF_P_TARGET, cosine_trial_scores, eer_and_mindcf


#: how the checkpoint and the lr are chosen, where SUPERB has no ASV dev set
ASV_DEV_SELECTION = ("the checkpoint and the lr are selected on a dev trial list over training speakers held out of "
                     "ASV training (40 on VoxCeleb1, which trains on 40 fewer speakers); SUPERB has no ASV dev set "
                     "and reports the best test EER over its saved checkpoints (s3prl docs/superb.md)")


@register_task("asv")
class SpeakerVerification(Task):
    name = "asv"
    departures = (
        FEATURE_CACHE_CROPS,
        "training utterances shorter than 2 s are kept; s3prl drops them (vad_config min_sec: 32000 samples)",
        ASV_DEV_SELECTION,
    )
    reference_lr = 1e-4
    primary_metric = "eer"
    secondary_metric = "mindcf"
    higher_is_better = False
    # EER of any constant score is 50 % (every trial ties at one threshold); minDCF of a constant
    # score is 1 once normalised (version 2, afeebeb: as NIST / Kaldi normalise it)
    metrics = (Metric("eer", False, "%", perfect=0.0, trivial=50.0, version=2),
               Metric("mindcf", False, "", perfect=0.0, trivial=1.0, version=2))
    versions = {1: "unversioned runs (some with the un-normalised minDCF, before afeebeb)", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    level = "utterance"
    # dev trials are between held-out speakers, who are no class of the AM-softmax
    dev_loss_defined = False
    heads = ("default", "xvector", "xvector_bn", "ecapa")
    profiles = {
        # quick: one lr for the demo budget (1e-3 was dev-best for three of the four demo upstreams).
        # head xvector_bn: s3prl's optional BatchNorm after each TDNN layer. In 300 updates the
        # SUPERB head without it trains far less (synth small, test EER with / without:
        # fbank 3.33 / 21.85, fbank_no_cmvn 0.37 / 7.41)
        "quick": dict(steps=300, lrs=(1e-3,), batch_seconds=24.0, eval_every=100, head_dim=128, head="xvector_bn",
                      crop_seconds=2.0, grad_clip=1000.0),
        # s3prl sv_voxceleb1/configs/amsoftmax.yaml: AdamW 1e-4 with torch's default weight decay
        # (0.01), 10 utterances x accumulation 5, max_timestep 128000 samples (8 s crops), clip
        # 1000, 200k updates, a checkpoint every 10k (save_step; no dev set). lrs: the maintainers'
        # sv_voxceleb1/asv.sh searches 1e-4 alone; widened to five decades like every SUPERB task
        "paper": dict(steps=200_000, lrs=superb_lr_grid(reference_lr, runfile=(1e-4,)),
                      batch_seconds=10 * 8.0, max_batch_items=10, grad_accum=5,
                      eval_every=10_000, head_dim=512, crop_seconds=8.0, grad_clip=1000.0, optimizer="adamw",
                      weight_decay=1e-2),
    }

    def prepare(self, corpus):
        # speakers whose trials are scored never train the embedding (VoxCeleb1 lists them)
        held_out = set((corpus.meta.get("asv") or {}).get("exclude_from_training", []))
        train = require([u for u in corpus.select(split="train", subset="speech")
                         if u.speaker and u.speaker not in held_out and not u.custom.get("asv_heldout")],
                        self.name, corpus, "training utterances with speakers")
        out = {"train": train}
        for split in ("dev", "test"):
            trials = corpus.trials.get(split)
            if not trials:
                from harness.errors import HarnessError

                raise HarnessError(f"corpus {corpus.name} ({corpus.root}) has no trials_{split}.txt for task 'asv'")
            need = {a for _, a, _ in trials} | {b for _, _, b in trials}
            by_id = {u.id: u for u in corpus.utterances if u.id in need}
            missing = sorted(need - set(by_id))
            if missing:
                from harness.errors import HarnessError

                raise HarnessError(f"trials_{split}.txt names {len(missing)} unknown utterances, e.g. {missing[0]}")
            out[split] = [by_id[i] for i in sorted(need)]
        speakers = sorted({u.speaker for u in train})
        info = {"classes": speakers, "trials": {s: corpus.trials[s] for s in ("dev", "test")},
                "note": corpus.meta.get("asv_dev_note", "checkpoint selected on a dev trial list (held-out speakers)")}
        return Splits(**out, info=info, pools=pools_by_subset_split(corpus, out))

    def target(self, utt, info):
        return utt.speaker

    def collate(self, targets):
        return list(targets)

    def build_head(self, dim, frame_rate, info, cfg):
        self._index = {c: i for i, c in enumerate(info["classes"])}
        if cfg.head == "ecapa":
            head, emb = ECAPAHead(dim, channels=cfg.head_dim), 192
        elif cfg.head in ("default", "xvector", "xvector_bn"):
            emb = cfg.head_dim
            head = XVectorHead(dim, hidden=cfg.head_dim, stats_dim=3 * cfg.head_dim if cfg.head_dim < 512 else 1500,
                               emb_dim=emb, batch_norm=cfg.head == "xvector_bn")
        else:
            from harness.errors import ConfigError

            raise ConfigError(f"asv head {cfg.head!r} unknown; use 'xvector', 'xvector_bn' or 'ecapa'")
        self._amsm = AMSoftmax(emb, len(info["classes"]), s=30.0, m=0.4)
        return HeadWithLoss(head, self._amsm)

    def loss(self, out, batch):
        train_emb, _ = out
        y = torch.tensor([self._index[t] for t in batch.targets], dtype=torch.long, device=train_emb.device)
        return self._amsm(train_emb, y)

    def decode(self, out, batch):
        _, trial_emb = out
        return [e.detach().cpu() for e in trial_emb]

    def extra_results(self, preds, refs, info):
        return {"mindcf_operating_point": {"p_target": DCF_P_TARGET, "c_miss": DCF_C_MISS, "c_fa": DCF_C_FA,
                                           "normalised": True}}

    def trivial_preds(self, refs, info):
        # one embedding for every utterance: every trial gets the same score, which no threshold
        # splits, so EER is 50 % and minDCF 1.0 (no better than always rejecting)
        return "a constant score for every trial", {i: torch.ones(1, device="cpu") for i in refs}  # scored on the host

    def score(self, preds, refs, info, split):
        scores, labels = cosine_trial_scores(preds, info["trials"][split])
        return eer_and_mindcf(scores, labels)
