"""`s3prl:NAME:FILE`: an s3prl upstream built by s3prl's own hub entry `NAME_local` (or `NAME`
when it already ends in `_local`) from the local checkpoint FILE, e.g.
`s3prl:hubert:ckpt/hubert_base_ls960.pt` (s3prl's converted HuBERT format: task_cfg, model_cfg,
model_weight, dictionaries_symbols) or `s3prl:wavlm:WavLM-Base+.pt` (cfg, model).

s3prl runs the model (no mapping into the project's families): its S3PRLUpstream collects the
hidden states and sets their lengths by its own convention, (samples - 1) // stride + 1 frames
(shorter model outputs are padded with their last frame, as in SUPERB). s3prl's experts cannot
promise that padding leaves the valid frames alone (wav2vec 2.0 / HuBERT Base group-normalise the
first CNN layer over the whole padded time axis), so each item runs alone.

`export_s3prl` writes the project's HuBERT / WavLM families in the formats those two entries read
(`harness export --format s3prl`); see its docstring for the one reparametrisation it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import torch
from torch import Tensor

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import SAMPLE_RATE, HiddenStates, Upstream, UpstreamSpec
from upstreams.hubert import HubertConfig, HubertUpstream


def _entry_name(name: str, entries) -> str:
    """The hub entry for NAME (`hubert` -> `hubert_local`), or an error listing the known ones."""
    for cand in (name, f"{name}_local"):
        if cand.endswith("_local") and cand in entries:
            return cand
    known = ", ".join(sorted(e[: -len("_local")] for e in entries))
    raise HarnessError(f"s3prl:{name}: s3prl has no local-checkpoint upstream {name!r}; known: {known}")


class S3prlUpstream(Upstream):
    """An s3prl hub upstream on a local checkpoint, in eval mode.

    Args:
        name: s3prl hub entry, with or without its `_local` suffix.
        ckpt: path of the checkpoint file, in the format that entry reads.
    """

    def __init__(self, name: str, ckpt: str):
        super().__init__()
        from harness import s3prl_compat

        path = Path(ckpt)
        if not path.is_file():
            raise HarnessError(f"s3prl:{name}:{ckpt}: no such checkpoint file")
        entry = _entry_name(name, s3prl_compat.hub_local_entries())
        try:
            self.model = s3prl_compat.s3prl_upstream(entry, str(path))
        except Exception as e:  # s3prl's loaders raise asserts, KeyErrors, unpickling errors...
            detail = " ".join(str(e).split())  # torch's unpickling refusals span several lines
            raise HarnessError(f"s3prl:{name}:{ckpt}: s3prl's {entry} cannot load it: "
                               f"{type(e).__name__}: {detail[:300]}{'...' if len(detail) > 300 else ''}") from None
        rates, sizes = set(self.model.downsample_rates), set(self.model.hidden_sizes)
        if len(rates) != 1 or len(sizes) != 1:
            raise HarnessError(f"s3prl:{name}:{ckpt}: layers differ in stride {sorted(rates)} or width "
                               f"{sorted(sizes)}; the harness needs one of each")
        self.stride = rates.pop()
        short = entry[: -len("_local")]
        self.spec = UpstreamSpec(
            name=f"s3prl:{short}:{path.stem}", family=f"s3prl:{short}", sample_rate=SAMPLE_RATE,
            num_layers=self.model.num_layers, hidden_size=sizes.pop(),
            frame_rate_hz=SAMPLE_RATE / self.stride, source=f"s3prl {entry} {path}",
        )
        self.eval()  # S3PRLUpstream leaves its expert in train mode (dropout on)

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """s3prl's frame count, (samples - 1) // stride + 1, (B,) int64."""
        return torch.div(torch.as_tensor(num_samples) - 1, self.stride, rounding_mode="floor").long() + 1

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> HiddenStates:
        """wavs (B, S) float at 16 kHz, wav_lens (B,) samples -> num_layers x (B, T, D), padding zero."""
        outs = []
        for wav, n in zip(wavs, wav_lens):
            hs, _ = self.model(wav[None, : int(n)], torch.tensor([int(n)], device=wav.device))
            outs.append(hs)
        lengths = self.num_frames(wav_lens.cpu())
        t_max = int(lengths.max())
        layers = []
        for i in range(self.spec.num_layers):
            out = wavs.new_zeros(len(outs), t_max, self.spec.hidden_size)
            for b, hs in enumerate(outs):
                out[b, : int(lengths[b])] = hs[i][0, : int(lengths[b])]
            layers.append(out)
        return HiddenStates(layers=layers, lengths=lengths)


@register_source("s3prl", form="s3prl:NAME:FILE")
def s3prl_source(rest: str) -> Upstream:
    """`NAME:FILE` (what follows `s3prl:`) -> the s3prl upstream NAME on checkpoint FILE."""
    name, _, ckpt = rest.partition(":")
    if not name or not ckpt:
        raise HarnessError(f"s3prl:{rest}: expected s3prl:NAME:FILE (e.g. s3prl:hubert:ckpt.pt)")
    return S3prlUpstream(name, ckpt)


# ----------------------------------------------------------------------------- export

#: s3prl 0.4.18's hubert and wavlm experts report a fixed 320-sample stride (get_downsample_rates)
S3PRL_STRIDE = 320


def _widen_last_conv(sd: Dict[str, Tensor], config: HubertConfig) -> int:
    """Make a model whose CNN width C equals its encoder width D representable in s3prl: fairseq's
    (and s3prl's) HuBERT / WavLM build no input projection when C == D, ours always has one.
    The last conv's output channels are duplicated (2C), and with them that block's norm (if any)
    and the LayerNorm before the projection; the projection reads the first copy ([W, 0], D x 2C).
    LayerNorm over two copies of x has the mean and variance of x, so every hidden state is the
    same function of the waveform. Modifies `sd` (our names); returns the new CNN width."""
    last = f"feature_extractor.conv_layers.{len(config.conv_channels) - 1}"
    for key in [f"{last}.conv.weight", f"{last}.conv.bias", f"{last}.norm.weight", f"{last}.norm.bias",
                "layer_norm.weight", "layer_norm.bias"]:
        if key in sd:
            sd[key] = torch.cat([sd[key], sd[key]])
    w = sd["post_extract_proj.weight"]
    sd["post_extract_proj.weight"] = torch.cat([w, torch.zeros_like(w)], dim=1)
    return 2 * config.conv_channels[-1]


def _fairseq_fields(c: HubertConfig, last_width: int) -> Dict[str, Any]:
    """The fairseq / unilm model config fields of a project config (plain values only: s3prl
    reads the checkpoint with torch.load, which unpickles nothing else by default)."""
    widths = list(c.conv_channels[:-1]) + [last_width]
    layers = ", ".join(f"({w}, {k}, {s})" for w, k, s in zip(widths, c.conv_kernels, c.conv_strides))
    return {"extractor_mode": "default" if c.extractor_mode == "group_norm" else "layer_norm",
            "conv_feature_layers": f"[{layers}]", "conv_bias": c.conv_bias,
            "encoder_layers": c.encoder_layers, "encoder_embed_dim": c.encoder_dim,
            "encoder_ffn_embed_dim": c.encoder_ffn_dim, "encoder_attention_heads": c.encoder_heads,
            "activation_fn": "gelu", "layer_norm_first": c.layer_norm_first, "conv_pos": c.pos_conv_kernel,
            "conv_pos_groups": c.pos_conv_groups, "dropout": c.dropout, "attention_dropout": c.attention_dropout,
            "activation_dropout": c.activation_dropout, "encoder_layerdrop": c.layerdrop,
            "dropout_input": c.dropout_input, "feature_grad_mult": c.feature_grad_mult, "final_dim": c.final_dim}


def export_s3prl(upstream: Upstream, out: Union[str, Path]) -> Path:
    """Write a project HuBERT / WavLM upstream as the checkpoint s3prl 0.4.18's `hubert_local`
    (converted HuBERT: task_cfg, model_cfg, model_weight, dictionaries_symbols) or `wavlm_local`
    (unilm WavLM: cfg, model) reads, `out/<folder name>.pt`; returns that file.

    The weights are loaded into s3prl's own model class (strictly) before saving, so every key
    and shape is the one s3prl's loader expects. The checkpoint holds the encoder only: HuBERT's
    pre-training head, which s3prl's class requires, is written as zeros (final_proj) with no
    label dictionary (dictionaries_symbols [None]); evaluation never uses it. A model whose CNN
    is as wide as its encoder is widened (`_widen_last_conv`) unless its projection is the identity.

    Raises:
        HarnessError: another family, or a stride other than the 320 samples s3prl's experts assume.
    """
    from harness import s3prl_compat
    from upstreams.source_fairseq import from_fairseq_state_dict

    if not isinstance(upstream, HubertUpstream) or upstream.family not in ("hubert", "wavlm"):
        raise HarnessError(f"{upstream.spec.name}: --format s3prl exports the hubert and wavlm families, "
                           f"not {upstream.spec.family!r}")
    c = upstream.encoder.config
    if c.frontend != "cnn":
        raise HarnessError(f"{upstream.spec.name}: the {c.frontend!r} front end has no counterpart in s3prl's "
                           "hubert and wavlm upstreams (they read waveforms through the CNN)")
    if c.stride != S3PRL_STRIDE:
        raise HarnessError(f"{upstream.spec.name}: stride {c.stride} samples; s3prl's hubert and wavlm upstreams "
                           f"assume {S3PRL_STRIDE} (20 ms frames)")
    sd = {k: v.detach().clone() for k, v in upstream.encoder.state_dict().items()}
    width = c.conv_channels[-1]
    if width == c.encoder_dim:
        w, b = sd["post_extract_proj.weight"], sd["post_extract_proj.bias"]
        if torch.equal(w, torch.eye(width)) and not b.any():  # fairseq's own layout: no projection
            del sd["post_extract_proj.weight"], sd["post_extract_proj.bias"]
        else:
            width = _widen_last_conv(sd, c)
    fields = _fairseq_fields(c, width)
    label_rate = SAMPLE_RATE / c.stride
    with torch.random.fork_rng(devices=[]):  # s3prl's constructors draw their init from the global RNG
        if upstream.family == "wavlm":
            wm = s3prl_compat.module("s3prl.upstream.wavlm.WavLM")
            cfg = {**fields, "relative_position_embedding": True, "num_buckets": c.num_buckets,
                   "max_distance": c.max_distance, "gru_rel_pos": True, "normalize": c.normalize}
            model = wm.WavLM(wm.WavLMConfig(cfg))
        else:
            hm = s3prl_compat.module("s3prl.upstream.hubert.hubert_model")
            task_cfg = {"label_rate": label_rate, "sample_rate": SAMPLE_RATE, "normalize": c.normalize}
            cfg = {**fields, "label_rate": label_rate}
            model = hm.HubertModel(hm.HubertConfig(**cfg), hm.HubertPretrainingConfig(**task_cfg), [None])
    theirs = model.state_dict()
    # our name of each of s3prl's keys (the pre-training head has none: from_fairseq_state_dict drops it)
    names = {k: next(iter(from_fairseq_state_dict({k: v})), None) for k, v in theirs.items()}
    mapped = {n for n in names.values() if n is not None}
    if mapped != set(sd):
        raise HarnessError(f"{upstream.spec.name}: weights without an s3prl counterpart: "
                           f"{sorted(set(sd) ^ mapped)[:5]}")
    state = {k: sd[n] if n is not None else torch.zeros_like(theirs[k]) for k, n in names.items()}
    model.load_state_dict(state, strict=True)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{folder.resolve().name}.pt"
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    if upstream.family == "wavlm":
        torch.save({"cfg": cfg, "model": weights}, path)
    else:
        torch.save({"task_cfg": task_cfg, "model_cfg": cfg, "model_weight": weights,
                    "dictionaries_symbols": [None]}, path)
    return path
