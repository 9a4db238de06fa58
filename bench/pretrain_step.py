"""Benchmark: our HuBERT pre-training step vs torchaudio's `hubert_pretrain_model`, same toy
configuration, same batch, same device. One step = forward, loss (masked CE + 10 x feature
penalty, normalised by the masked-frame count; the published masked-only loss for both, whatever
the recipe's pred_nomask_weight), backward, grad clipping, AdamW update.
Prints the throughputs in seconds of audio per second and the ratios ours / torchaudio like for
like: both in fp32, and both under the same bf16 autocast (`train.precision: bf16`: matmuls and
convolutions in bfloat16 on CPUs with AVX512-BF16 or AMX, fp32 weights and optimizer). No ratio
compares two precisions (issue 30 finding 10: our bf16 step against torchaudio's fp32 step
measured the precision, not the code).

Then the WavLM encoder alone: our `upstreams.wavlm.WavlmEncoder` vs torchaudio's `wavlm_model` at
the same configuration (the `--wavlm-preset` family preset with every dropout and LayerDrop at 0,
feature_grad_mult 1, so both do the same work), on the same batch. torchaudio's weights are
copied into ours (`from_torchaudio_state_dict`) and the last hidden states are checked to agree
to 1e-4 (fp32) before timing. One step = forward (no mask, lengths None: torchaudio's WavLM
rejects `lengths`, pytorch/audio#3700, and the batch is unpadded anyway), mean square of the last
hidden state, backward, gradients dropped; in fp32 and under bf16 autocast. Prints the ratios
torchaudio time / our time (> 1: ours is faster), i.e. ours / torchaudio in throughput, per
precision, like the HuBERT line.

    .venv/bin/python bench/pretrain_step.py [--recipe hubert_tiny] [--items 4] [--seconds 4]
        [--steps 8] [--rounds 3] [--threads 2] [--device cpu]
        [--wavlm-preset tiny] [--wavlm-warmup 3] [--wavlm-repeats 15] [--quick]

--quick: a seconds-long run that checks the script works (2 items x 1 s, 2 steps, 1 round, 2
WavLM repeats); its numbers are not measurements.

The two HuBERT steps alternate round by round and the two WavLM steps repeat by repeat (the
median step time of each is reported), so a load that comes and goes on the machine hits both
alike. --wavlm-repeats 0 skips the WavLM comparison.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from harness.pretrain.labels import num_frames  # noqa: E402
from harness.pretrain.loop import build_optimizer  # noqa: E402
from harness.pretrain.model import MaskedPredictionModel, compute_mask  # noqa: E402
from harness.pretrain.recipe_load import load_recipe  # noqa: E402
from upstreams.base import get_family  # noqa: E402


def median_step_times(steps, warmup: int, rounds: int, per_round: int, sync) -> dict:
    """Median seconds per call of each (name, fn) in `steps`: `warmup` untimed calls of each, then
    `rounds` rounds of `per_round` timed calls of each, the order reversed every other round so
    that a load coming and going on the machine hits all alike. `sync` waits for the device."""
    for _, fn in steps:
        for _ in range(warmup):
            fn()
    times = {name: [] for name, _ in steps}
    for r in range(rounds):
        for name, fn in steps if r % 2 == 0 else steps[::-1]:
            for _ in range(per_round):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def print_medians(med: dict, audio_s: float) -> dict:
    """Print each median step time and its throughput; returns name -> seconds of audio per second."""
    for name, t in med.items():
        print(f"  {name:15s} median step {t * 1000:7.1f} ms  ->  {audio_s / t:7.1f} s of audio / s")
    return {name: audio_s / t for name, t in med.items()}


def torchaudio_model(c, num_classes: int, t):
    from torchaudio.models import hubert_pretrain_model

    return hubert_pretrain_model(
        extractor_mode=c.extractor_mode,
        extractor_conv_layer_config=list(zip(c.conv_channels, c.conv_kernels, c.conv_strides)),
        extractor_conv_bias=c.conv_bias, encoder_embed_dim=c.encoder_dim,
        encoder_projection_dropout=c.dropout_input, encoder_pos_conv_kernel=c.pos_conv_kernel,
        encoder_pos_conv_groups=c.pos_conv_groups, encoder_num_layers=c.encoder_layers,
        encoder_num_heads=c.encoder_heads, encoder_attention_dropout=c.attention_dropout,
        encoder_ff_interm_features=c.encoder_ffn_dim, encoder_ff_interm_dropout=c.activation_dropout,
        encoder_dropout=c.dropout, encoder_layer_norm_first=c.layer_norm_first, encoder_layer_drop=c.layerdrop,
        mask_prob=t.mask_prob, mask_selection="static", mask_other=0.0, mask_length=t.mask_length,
        no_mask_overlap=False, mask_min_space=1, mask_channel_prob=0.0, mask_channel_selection="static",
        mask_channel_other=0.0, mask_channel_length=10, no_mask_channel_overlap=False, mask_channel_min_space=1,
        skip_masked=False, skip_nomask=False, num_classes=num_classes, final_dim=c.final_dim,
        feature_grad_mult=c.feature_grad_mult if c.feature_grad_mult < 1.0 else None)  # None = no scaling


def torchaudio_wavlm(c):
    """torchaudio's WavLM (Wav2Vec2Model) at config `c` (a WavlmConfig); no aux head."""
    from torchaudio.models import wavlm_model

    return wavlm_model(
        extractor_mode=c.extractor_mode,
        extractor_conv_layer_config=list(zip(c.conv_channels, c.conv_kernels, c.conv_strides)),
        extractor_conv_bias=c.conv_bias, encoder_embed_dim=c.encoder_dim,
        encoder_projection_dropout=c.dropout_input, encoder_pos_conv_kernel=c.pos_conv_kernel,
        encoder_pos_conv_groups=c.pos_conv_groups, encoder_num_layers=c.encoder_layers,
        encoder_num_heads=c.encoder_heads, encoder_num_buckets=c.num_buckets,
        encoder_max_distance=c.max_distance, encoder_attention_dropout=c.attention_dropout,
        encoder_ff_interm_features=c.encoder_ffn_dim, encoder_ff_interm_dropout=c.activation_dropout,
        encoder_dropout=c.dropout, encoder_layer_norm_first=c.layer_norm_first, encoder_layer_drop=c.layerdrop,
        aux_num_out=None)


def bench_wavlm(a, wavs: torch.Tensor, audio_s: float, dev: torch.device, sync) -> None:
    """Our WavLM encoder vs torchaudio's, forward + backward, same weights, same batch."""
    from upstreams.wavlm import from_torchaudio_state_dict

    family = get_family("wavlm")
    # identical work: no dropout anywhere, no LayerDrop, no gradient scaling of the CNN
    cfg = dataclasses.replace(family.preset(a.wavlm_preset), dropout=0.0, attention_dropout=0.0,
                              activation_dropout=0.0, dropout_input=0.0, layerdrop=0.0, feature_grad_mult=1.0)
    torch.manual_seed(0)
    ta = torchaudio_wavlm(cfg).to(dev).train()
    ours = family.encoder_cls(cfg).to(dev).train()
    missing, unexpected = ours.load_state_dict(from_torchaudio_state_dict(ta.state_dict()), strict=False)
    if list(missing) != ["mask_emb"] or unexpected:
        raise SystemExit(f"wavlm weight copy: missing {missing}, unexpected {unexpected}")

    with torch.no_grad():
        y_o = ours(wavs, None).hidden_states[-1]
        y_t, _ = ta(wavs, None)
    diff = (y_o - y_t).abs().max().item()
    if y_o.shape != y_t.shape or not diff <= 1e-4:
        raise SystemExit(f"wavlm outputs differ: ours {tuple(y_o.shape)}, torchaudio {tuple(y_t.shape)}, "
                         f"max |diff| {diff:.3g} > 1e-4; the timing would not compare the same computation")

    def autocast(dtype):
        return torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype != torch.float32)

    def step(model, out, dtype):
        with autocast(dtype):
            y = out(model(wavs, None))
        y.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    def ours_last(o):
        return o.hidden_states[-1]

    def ta_last(o):
        return o[0]

    med = median_step_times((("ours", lambda: step(ours, ours_last, torch.float32)),
                             ("torchaudio", lambda: step(ta, ta_last, torch.float32)),
                             ("ours bf16", lambda: step(ours, ours_last, torch.bfloat16)),
                             ("torchaudio bf16", lambda: step(ta, ta_last, torch.bfloat16))),
                            a.wavlm_warmup, a.wavlm_repeats, 1, sync)

    n_o = sum(p.numel() for p in ours.parameters())
    n_t = sum(p.numel() for p in ta.parameters())
    print(f"wavlm_{a.wavlm_preset} encoder forward+backward ({cfg.encoder_layers} x {cfg.encoder_dim}, "
          f"{cfg.encoder_heads} heads, CNN {cfg.conv_channels[0]} ch, {cfg.num_buckets} buckets); same batch; "
          f"params ours {n_o / 1e6:.2f} M (+ mask_emb), torchaudio {n_t / 1e6:.2f} M; "
          f"outputs agree to {diff:.1e}; median of {a.wavlm_repeats} after {a.wavlm_warmup} warm-up")
    print_medians(med, audio_s)
    print(f"  wavlm ratio ours / torchaudio (torchaudio time / our time, > 1: ours faster), like for like: "
          f"{med['torchaudio'] / med['ours']:.2f} (both fp32); "
          f"{med['torchaudio bf16'] / med['ours bf16']:.2f} (both under bf16 autocast)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="hubert_tiny")
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per item (the crop length)")
    ap.add_argument("--iteration", type=int, default=1, help="which iteration's model/training config")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--wavlm-preset", default="tiny", help="WavLM family preset for the encoder comparison")
    ap.add_argument("--wavlm-warmup", type=int, default=3, help="untimed WavLM steps of each before timing")
    ap.add_argument("--wavlm-repeats", type=int, default=15,
                    help="timed WavLM steps of each, alternating (0 = skip the WavLM comparison)")
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run (not a measurement)")
    a = ap.parse_args()
    if a.quick:
        a.items, a.seconds, a.steps, a.rounds, a.wavlm_warmup, a.wavlm_repeats = 2, 1.0, 2, 1, 1, 2
    torch.set_num_threads(a.threads)
    it = load_recipe(a.recipe).iterations[a.iteration - 1]
    cfg, tcfg, K = it.model, it.train, it.cluster.k
    if it.family != "hubert":
        raise SystemExit(f"--recipe {a.recipe}: the pre-training step is compared with torchaudio's HuBERT, so the "
                         f"recipe's model must be family hubert, not {it.family}")
    dev = torch.device(a.device)

    g = torch.Generator().manual_seed(0)
    S = int(a.seconds * 16000)
    T = num_frames(cfg, S)
    # speech-like batch: noise bursts through a random resonance, plus silence
    wavs = torch.randn(a.items, S, generator=g) * (torch.rand(a.items, S // 800 + 1, generator=g)
                                                   .repeat_interleave(800, 1)[:, :S] > 0.3) * 0.1
    labels = torch.randint(0, K, (a.items, T), generator=g)
    wavs, labels = wavs.to(dev), labels.to(dev)
    audio_s = a.items * S / 16000

    torch.manual_seed(0)
    encoder = get_family(it.family).encoder_cls(cfg)
    # masked frames only (nomask_weight 0), as torchaudio's published loss below
    ours = MaskedPredictionModel(encoder, [("main", K)], tcfg.logit_temp, tcfg.feature_pen, 0.0).to(dev).train()
    ours_bf16 = copy.deepcopy(ours)
    ta = torchaudio_model(cfg, K, tcfg).to(dev).train()
    ta_bf16 = copy.deepcopy(ta)
    opt_o, _ = build_optimizer(ours, tcfg)
    opt_b, _ = build_optimizer(ours_bf16, tcfg)
    opt_t, _ = build_optimizer(ta, tcfg)
    opt_tb, _ = build_optimizer(ta_bf16, tcfg)
    mg = torch.Generator().manual_seed(1)

    def our_step(model, opt, dtype):
        mask = compute_mask(a.items, T, tcfg.mask_prob, tcfg.mask_length, tcfg.min_masks, generator=mg).to(dev)
        with torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype != torch.float32):
            out = model(wavs, {"main": labels}, mask)
        (out["loss"].float() / out["n_masked"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def step_ours():
        our_step(ours, opt_o, torch.float32)

    def step_bf16():
        our_step(ours_bf16, opt_b, torch.bfloat16)

    def ta_step(model, opt, dtype):
        with torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype != torch.float32):
            logit_m, logit_u, pen = model(wavs, labels)
        n_m = logit_m.shape[0]
        target = torch.zeros(n_m, dtype=torch.long, device=dev)  # the positive is class 0 in torchaudio
        loss = F.cross_entropy(logit_m.float(), target, reduction="sum") + tcfg.feature_pen * pen.float() * n_m
        (loss / n_m).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def step_ta():
        ta_step(ta, opt_t, torch.float32)

    def step_ta_bf16():
        ta_step(ta_bf16, opt_tb, torch.bfloat16)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    med = median_step_times((("ours", step_ours), ("torchaudio", step_ta), ("ours bf16", step_bf16),
                             ("torchaudio bf16", step_ta_bf16)), 2, a.rounds, a.steps, sync)

    n_o = sum(p.numel() for p in ours.parameters())
    n_t = sum(p.numel() for p in ta.parameters())
    print(f"{a.recipe} model ({cfg.encoder_layers} x {cfg.encoder_dim}, CNN {cfg.conv_channels[0]} ch, K = {K}); "
          f"batch {a.items} x {a.seconds:g} s = {audio_s:g} s of audio; device {dev}, {a.threads} threads; "
          f"params ours {n_o / 1e6:.2f} M, torchaudio {n_t / 1e6:.2f} M")
    res = print_medians(med, audio_s)
    print(f"  ratio ours / torchaudio, like for like: {res['ours'] / res['torchaudio']:.2f} (both fp32); "
          f"{res['ours bf16'] / res['torchaudio bf16']:.2f} (both under bf16 autocast)")
    sys.stdout.flush()

    if a.wavlm_repeats > 0:
        bench_wavlm(a, wavs, audio_s, dev, sync)


if __name__ == "__main__":
    main()
