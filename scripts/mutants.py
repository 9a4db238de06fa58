"""Hand-made mutants of the code that makes leaderboard numbers, and whether the tests catch them.

Each mutant replaces one exact piece of text in one file with a plausible bug (an off-by-one,
a wrong direction, a dropped term) and names the few test files (or test ids) that must fail
because of it. The script copies the working tree (tracked and untracked, not ignored) to a
temporary folder, applies each mutant there in turn, runs its tests with
`pytest -x -q` on one thread, restores the file, and prints caught / survived and the kill
rate. A mutant survives when its tests still pass: then a bug of that kind would reach a
board unnoticed, and a test is missing.

Not part of CI (a full run takes tens of minutes on two cores):

    python scripts/mutants.py                 # every mutant, after a baseline run of their tests
    python scripts/mutants.py --only probe-keeps-last-eval --only cache-read-one-frame-late
    python scripts/mutants.py --list          # names, files and tests only

tests/unit/test_mutants_list.py checks that every mutant's original text is still in its file
exactly once, so the list cannot silently stop mutating anything when the code moves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
#: per mutant; a run that exceeds it (a mutant that makes a loop endless) counts as caught
TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutant:
    """One bug, planted by text replacement.

    Attributes:
        name: unique, kebab-case.
        file: path relative to the repository root.
        original: text that occurs exactly once in `file`.
        replacement: what replaces it (the bug).
        tests: pytest targets (files or `file::test` ids) of which at least one must fail.
        bug: what the mutant does to the numbers, in a few words.
    """

    name: str
    file: str
    original: str
    replacement: str
    tests: Tuple[str, ...]
    bug: str


def M(name: str, file: str, original: str, replacement: str, tests: Sequence[str], bug: str) -> Mutant:
    return Mutant(name, file, original, replacement, tuple(tests), bug)


T_METRICS = "tests/unit/test_metrics.py"
T_METREF = "tests/unit/test_metric_references.py"
T_SDSS = "tests/unit/test_sd_ss_metrics.py"
T_FEAT = "tests/unit/test_featurizer.py"
T_SEL = "tests/unit/test_probe_selection.py"
T_CACHE = "tests/unit/test_feature_cache_equals_live.py"
T_BOARD = "tests/unit/test_leaderboard.py"
T_LR = "tests/unit/test_select_lr.py"
T_SCORES = "tests/unit/test_scores.py"
T_PRE = "tests/unit/test_pretrain.py"
T_MASK = "tests/unit/test_pretrain_mask_loss.py"
T_WAVLM = "tests/unit/test_wavlm.py"
T_HUBERT = "tests/unit/test_hubert.py"
T_BASE = "tests/unit/test_baselines.py"
T_CORP = "tests/unit/test_corpora.py"
T_SPLITS = "tests/unit/test_corpus_splits.py"
T_CTC = "tests/unit/test_ctc_decode.py"

MUTANTS: List[Mutant] = [
    # ---- metrics (tasks/metrics.py)
    M("mindcf-normalised-by-p-target", "tasks/metrics.py",
      "c_default = min(c_miss * p_target, c_fa * (1.0 - p_target))", "c_default = c_miss * p_target",
      [T_METREF], "minDCF divided by C_miss P_target instead of the best no-score cost (same at P_target <= 0.5)"),
    M("eer-not-interpolated", "tasks/metrics.py",
      "eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])", "eer = fpr[k]",
      [T_METREF], "EER read at the first ROC point past the crossing"),
    M("roc-splits-tied-scores", "tasks/metrics.py",
      "last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]", "last = np.arange(s.size)",
      [T_METREF], "tied scores accepted one by one (an unreachable operating point)"),
    M("wer-drops-insertions", "tasks/metrics.py",
      "errors = out.substitutions + out.deletions + out.insertions + ins",
      "errors = out.substitutions + out.deletions + ins",
      [T_METRICS], "WER/PER without insertions"),
    M("cer-without-spaces", "tasks/metrics.py",
      "n = sum(len(r) for r, _ in pairs)", "n = sum(len(r.replace(' ', '')) for r, _ in pairs)",
      [T_METRICS], "CER denominator leaves spaces out"),
    M("macro-accuracy-is-micro", "tasks/metrics.py",
      "return float(np.mean(list(per.values()))) if per else float(\"nan\")",
      "return accuracy(refs, preds) if per else float(\"nan\")",
      [T_METRICS], "LID macro accuracy is the plain accuracy"),
    M("ctc-greedy-keeps-repeats", "tasks/metrics.py",
      "seq = torch.unique_consecutive(best[i, :n]).tolist()", "seq = best[i, :n].tolist()",
      [T_METRICS], "greedy CTC does not merge repeated labels"),
    M("ctc-greedy-reads-padding", "tasks/metrics.py",
      "best = log_probs.argmax(-1).cpu()\n    out = []\n    for i, n in enumerate(lengths.tolist()):",
      "best = log_probs.argmax(-1).cpu()\n    out = []\n    for i, n in enumerate([best.shape[1]] * len(lengths)):",
      [T_METRICS], "greedy CTC decodes the padding frames too"),
    M("si-sdr-not-zero-mean", "tasks/metrics.py",
      "    ref = ref - ref.mean(-1, keepdim=True)\n    scale", "    scale",
      [T_SDSS], "SI-SDR without removing the reference's mean"),
    M("median-filter-ties-active", "tasks/metrics.py",
      "return window_sums > k // 2", "return window_sums >= k // 2",
      [T_SDSS], "SD median filter keeps a frame active on a minority"),
    M("der-skips-overlap", "tasks/metrics.py",
      "DiarizationErrorRate(collar=0.0, skip_overlap=False)", "DiarizationErrorRate(collar=0.0, skip_overlap=True)",
      [T_SDSS], "DER does not score overlapped speech"),
    # ---- the featurizer
    M("featurizer-sigmoid-weights", "harness/featurizer.py",
      "w = F.softmax(self.weights, dim=0)", "w = torch.sigmoid(self.weights)",
      [T_FEAT], "layer weights not normalised by a softmax"),
    M("corrected-contributions-divide", "harness/featurizer.py",
      "c = w * n\n", "c = w / n\n",
      [T_FEAT], "layer contributions divided by the layer norm instead of multiplied"),
    # ---- the probe's dev-best selection
    M("probe-keeps-last-eval", "harness/probe.py",
      "if best_key is None or key > best_key:", "if True:",
      [T_SEL], "the probe keeps its last evaluation, not the dev-best"),
    M("probe-keeps-first-of-ties", "harness/probe.py",
      "return signed(task.primary_metric, task.higher_is_better), sec_key, step",
      "return signed(task.primary_metric, task.higher_is_better), sec_key, -step",
      [T_SEL], "a tie on dev keeps the earliest weights"),
    M("probe-ignores-metric-direction", "harness/probe.py",
      "return (v if higher_is_better else -v) if math.isfinite(v) else -math.inf",
      "return v if math.isfinite(v) else -math.inf",
      [T_SEL], "an error rate is maximised on dev"),
    M("probe-nan-ranks-first", "harness/probe.py",
      "return (v if higher_is_better else -v) if math.isfinite(v) else -math.inf",
      "return (v if higher_is_better else -v) if math.isfinite(v) else math.inf",
      [T_SEL], "a NaN dev evaluation becomes the dev-best"),
    M("probe-tests-last-weights", "harness/probe.py",
      "    featurizer.load_state_dict(best_state[0])\n    head.load_state_dict(best_state[1])\n", "",
      [T_SEL], "test scored with the last weights while best_step names the dev-best"),
    # ---- the board's lr selection and its scores
    M("board-lr-always-max", "harness/board/select.py",
      "best = max(valid.values()) if higher_is_better else min(valid.values())", "best = max(valid.values())",
      [f"{T_SEL}::test_board_picks_the_lr_on_dev_in_the_metric_direction_never_on_test",
       f"{T_BOARD}::test_select_best_uses_dev_mean", T_LR], "the board picks the worst lr of an error-rate task"),
    M("board-lr-on-test", "harness/board/select.py",
      "split = \"dev\" if any(not _missing(d) for _, d, _ in runs) else \"test\"",
      "split = \"test\"", [f"{T_SEL}::test_board_picks_the_lr_on_dev_in_the_metric_direction_never_on_test", T_LR],
      "the lr is picked on test"),
    M("board-lr-nan-seed-ignored", "harness/board/select.py",
      "    if any(_missing(v) for v in values):\n",
      "    values = [v for v in values if not _missing(v)]\n    if not values:\n",
      [f"{T_SEL}::test_board_sets_aside_an_lr_whose_seed_diverged", T_LR],
      "an lr whose seed diverged is ranked on its surviving seeds"),
    M("board-lr-ties-to-larger", "harness/board/select.py",
      "return LrChoice(min(lr for lr, m in valid.items() if m == best), split, means)",
      "return LrChoice(max(lr for lr, m in valid.items() if m == best), split, means)",
      [T_LR], "a tie on dev goes to the larger lr (the sweep's summary line did so before the one rule)"),
    M("board-oldest-config", "harness/board/select.py",
      "newest = max(latest.index, key=lambda h: (latest[h], h))",
      "newest = min(latest.index, key=lambda h: (latest[h], h))",
      [f"{T_SEL}::test_board_shows_the_newest_config_only"], "the board shows the oldest config's runs"),
    M("ci-uses-population-std", "harness/scores.py",
      "x.std(ddof=1)", "x.std()", [T_SCORES], "95% interval from the biased standard deviation"),
    M("superb-score-wrong-scale", "harness/scores.py",
      "per_task.setdefault(key[0], []).append(1000.0 * (x - ref.fbank) / (ref.sota - ref.fbank))",
      "per_task.setdefault(key[0], []).append(1000.0 * (x - ref.fbank) / ref.sota)",
      [T_SCORES], "SUPERB score scaled by SOTA instead of SOTA - FBANK"),
    # ---- the feature cache
    M("cache-read-one-frame-late", "harness/features.py",
      "return self._shards[s][o + start : o + start + length]",
      "return self._shards[s][o + start + 1 : o + start + length + 1]",
      [T_CACHE], "cached features read one frame late"),
    M("cache-item-indexed-before-flush", "harness/extraction.py",
      "        if self._frames + n > self.frames_per_shard:\n            self.flush()\n"
      "        self.items.append((uid, len(self.shards), self._frames, n))\n",
      "        self.items.append((uid, len(self.shards), self._frames, n))\n"
      "        if self._frames + n > self.frames_per_shard:\n            self.flush()\n",
      [T_CACHE], "the first item of a new shard is indexed into the previous one"),
    M("live-crop-ignores-start", "harness/batches.py",
      "out[:, k, :n] = layers[:, k, s : s + n]", "out[:, k, :n] = layers[:, k, :n]",
      [T_CACHE], "live extraction crops from frame 0 whatever the crop start"),
    # ---- the families' forward passes
    M("post-ln-becomes-pre-ln", "upstreams/hubert_modules.py",
      "x = self.self_attn_layer_norm(x + self.dropout1(self.self_attn(x, *attn_args)))",
      "x = x + self.dropout1(self.self_attn(self.self_attn_layer_norm(x), *attn_args))",
      [f"{T_WAVLM}::test_parity_with_torchaudio"], "a post-LN layer normalises before attention"),
    M("pos-conv-drops-first-frame", "upstreams/hubert_modules.py",
      "y = y[..., : -self.num_remove]", "y = y[..., self.num_remove :]",
      [f"{T_WAVLM}::test_parity_with_torchaudio"], "the positional conv is shifted by one frame"),
    M("wavlm-gate-ignored", "upstreams/wavlm.py",
      "bias = (a * (b * self.grep_a - 1.0) + 2.0).to(position_bias.dtype) * position_bias", "bias = position_bias",
      [f"{T_WAVLM}::test_parity_with_torchaudio"], "WavLM's gated relative position bias loses its gate"),
    M("padding-reaches-pos-conv", "upstreams/hubert_modules.py",
      "        x = x.masked_fill(pad[..., None], 0.0)\n    x = x + enc.pos_conv(x)",
      "        pass\n    x = x + enc.pos_conv(x)",
      [f"{T_HUBERT}::test_padded_batch_equals_items_alone"], "padding leaks into valid frames through the pos conv"),
    M("baseline-cmvn-mean-only", "upstreams/baselines.py",
      "return (x - x.mean(0, keepdim=True)) / (1e-10 + x.std(0, keepdim=True))",
      "return x - x.mean(0, keepdim=True)",
      [f"{T_BASE}::test_baselines_apply_per_utterance_cmvn"], "fbank/mfcc without variance normalisation"),
    # ---- CTC decoding in the tasks
    M("ctc-task-decodes-padding", "tasks/base_ctc.py",
      "for seq in ctc_greedy(log_probs, lens)]", "for seq in ctc_greedy(log_probs, lens * 0 + log_probs.shape[1])]",
      [T_CTC], "PR/ASR transcripts include the padding frames of a batch"),
    M("repeat-frames-keeps-lengths", "tasks/heads.py",
      "return self.head(x.repeat_interleave(self.factor, dim=1), lengths * self.factor)",
      "return self.head(x.repeat_interleave(self.factor, dim=1), lengths)",
      [T_CTC], "a coarse upstream's repeated frames are cut to the original length"),
    # ---- corpus splits
    M("select-ignores-split", "harness/data/corpus.py",
      "if (split is None or u.split == split) and", "if (split is None or u.split != \"test\") and",
      [T_SPLITS], "train and dev utterances mixed"),
    M("librispeech-dev-is-test", "harness/data/corpora_librispeech.py",
      "for split, cands in ((\"dev\", DEV_PARTS), (\"test\", TEST_PARTS)):",
      "for split, cands in ((\"dev\", TEST_PARTS), (\"test\", TEST_PARTS)):",
      [T_SPLITS], "LibriSpeech dev is its test part"),
    M("speechcommands-validation-in-train", "harness/data/corpora_speechcommands.py",
      "split = \"dev\" if rel in valid else \"train\"", "split = \"train\"",
      [f"{T_CORP}::test_speechcommands_labels_splits_silence"], "Speech Commands' validation list trains the probe"),
    M("voxceleb-iden-dev-test-swapped", "harness/data/corpora_voxceleb.py",
      "IDEN_SPLITS = {\"1\": \"train\", \"2\": \"dev\", \"3\": \"test\"}",
      "IDEN_SPLITS = {\"1\": \"train\", \"2\": \"test\", \"3\": \"dev\"}",
      [T_SPLITS], "VoxCeleb1 SID dev and test swapped"),
    # ---- pre-training mask and loss
    M("mask-ignores-mask-prob", "harness/pretrain/model.py",
      "num = max(int(min_masks), int(mask_prob * T / float(mask_length) + u))",
      "num = max(int(min_masks), int(0.8 * T / float(mask_length) + u))",
      [T_MASK], "the masked fraction is always that of mask_prob 0.8"),
    M("mask-spans-of-one-frame", "harness/pretrain/model.py",
      "idx = (starts[:, :, None] + torch.arange(mask_length)[None, None, :]).reshape(B, -1)",
      "idx = (starts[:, :, None] + torch.arange(1)[None, None, :]).reshape(B, -1)",
      [T_MASK], "masked spans one frame long"),
    M("loss-over-all-frames", "harness/pretrain/model.py",
      "m, u = mask & has, ~mask & has", "m, u = has, ~mask & has",
      [T_MASK], "masked-prediction CE over every labelled frame"),
    M("logits-times-temperature", "harness/pretrain/model.py",
      "return (a @ b.t()) / self.logit_temp", "return (a @ b.t()) * self.logit_temp",
      [T_MASK], "cosine logits multiplied by the temperature"),
    M("feature-penalty-not-scaled", "harness/pretrain/model.py",
      "loss = ce + self.feature_pen * pen * stats[\"n_masked\"].to(pen.dtype) + self.nomask_weight * loss_u",
      "loss = ce + self.feature_pen * pen + self.nomask_weight * loss_u",
      [T_MASK], "the feature penalty not scaled by the masked frames (fairseq's sample size)"),
]


def check_list(mutants: Sequence[Mutant] = MUTANTS, root: Path = ROOT) -> List[str]:
    """Problems with the list (empty when sound): duplicate names, missing files or tests, an
    original text absent or not unique in its file, a replacement equal to the original."""
    problems, seen = [], set()
    for m in mutants:
        if m.name in seen:
            problems.append(f"{m.name}: duplicate name")
        seen.add(m.name)
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        n = path.read_text().count(m.original)
        if n != 1:
            problems.append(f"{m.name}: original text occurs {n} times in {m.file}, expected once")
        if m.replacement == m.original:
            problems.append(f"{m.name}: replacement equals the original")
        elif n == 1 and m.file.endswith(".py"):
            try:  # a mutant must be a bug, not a syntax error that any import would catch
                compile(path.read_text().replace(m.original, m.replacement), m.file, "exec")
            except SyntaxError as e:
                problems.append(f"{m.name}: the mutated {m.file} does not compile ({e.msg}, line {e.lineno})")
        if not m.tests:
            problems.append(f"{m.name}: no tests named")
        for t in m.tests:
            if not (root / t.split("::")[0]).is_file():
                problems.append(f"{m.name}: test file {t.split('::')[0]} does not exist")
    return problems


def copy_tree(dst: Path) -> None:
    """The working tree as git sees it (tracked + untracked, ignored files left out) into `dst`."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         check=True, capture_output=True).stdout.decode()
    for rel in filter(None, out.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def run_tests(tree: Path, tests: Sequence[str], timeout: float = TIMEOUT_S) -> Tuple[int, str, float]:
    """(pytest's exit status, what it said, seconds) of `tests` run in `tree` on one thread:
    the first failed test's id when one failed, else pytest's last line; status 124 when it ran
    past `timeout`."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HARNESS_TEST_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timed out", time.time() - t0
    lines = [ln for ln in (p.stdout + p.stderr).strip().splitlines() if ln.strip()]
    failed = [ln.split(" - ")[0].split(" ", 1)[1] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    return p.returncode, (f"killed by {failed[0]}" if failed else (lines[-1] if lines else "")), time.time() - t0


def apply(tree: Path, m: Mutant) -> str:
    """Plant `m` in `tree`; returns the file's original text (for `restore`)."""
    path = tree / m.file
    text = path.read_text()
    if text.count(m.original) != 1:
        raise SystemExit(f"mutant {m.name}: its original text occurs {text.count(m.original)} times in {m.file}")
    path.write_text(text.replace(m.original, m.replacement))
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="run this mutant only (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the unmutated run of the tests (a mutant is only caught if they pass without it)")
    args = ap.parse_args(argv)
    problems = check_list()
    if problems:
        print("\n".join(problems))
        return 2
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
    if unknown:
        print(f"unknown mutant(s): {', '.join(unknown)}")
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name:36s} {m.file:40s} {' '.join(m.tests)}\n    {m.bug}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if not args.no_baseline:
            tests = sorted({t for m in chosen for t in m.tests})
            rc, tail, secs = run_tests(tree, tests)
            print(f"baseline (no mutant) {len(tests)} test targets: {'pass' if rc == 0 else 'FAIL'} "
                  f"({secs:.0f} s) {tail}", flush=True)
            if rc != 0:
                print("the tests fail without a mutant: fix them first")
                return 2
        results: Dict[str, bool] = {}
        for m in chosen:
            original = apply(tree, m)
            try:
                rc, tail, secs = run_tests(tree, m.tests)
            finally:
                (tree / m.file).write_text(original)
            # caught: a test failed (1) or the tests hung (124). Any other status (2: a collection
            # error, 4: a test id that does not exist) says nothing about the mutant: not caught
            caught = rc in (1, 124)
            results[m.name] = caught
            label = "caught  " if caught else ("SURVIVED" if rc == 0 else "BROKEN  ")
            how = {0: "", 1: "", 124: " (timeout)"}.get(rc, f" (pytest exit {rc})")
            print(f"{label} {m.name:36s} {secs:4.0f} s{how}  {tail}", flush=True)
    n, k = len(results), sum(results.values())
    print(f"kill rate: {k}/{n} = {100.0 * k / max(n, 1):.1f} %")
    survived = [name for name, c in results.items() if not c]
    if survived:
        print("not caught: " + ", ".join(survived))
    return 0 if not survived else 1


if __name__ == "__main__":
    sys.exit(main())
