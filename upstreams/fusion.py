"""Fusion of upstreams at several frame rates: the parallel multi-resolution scheme (CV-HuBERT,
docs/pretrain.md section 5; Shi et al., "Exploration on HuBERT with Multiple Resolutions", Interspeech 2023).

`fusion:A+B+C` (harness.evaluate.build_upstream; A, B, C registered names or exported folders)
runs every member on the same audio, brings each member's hidden states to the finest member's
frame rate and concatenates them layer by layer, before the probe's weighted sum:

    layer l of the fusion = [A_l ; up(B_l) ; up(C_l)]      (B, T_finest, D_A + D_B + D_C)

`up` repeats each frame stride_member / stride_finest times (a whole number, else an error) and
then cuts or extends the result to the finest member's frame count, extending with the item's own
last valid frame. This is how s3prl's multires_hubert expert (by the same first author) aligns
its resolutions: repeat_interleave, then cut to one length. The members must expose the same
number of layers (L+1), so that "layer l" means the same depth in each; the weighted sum then
learns one weight per depth, shared by the resolutions, and the head sees every resolution.

UNVERIFIED: the paper's own text (arXiv 2306.01084) could not be read here, so whether its
parallel scheme concatenates or sums, and whether per layer or after per-model weighted sums,
is our choice (per-layer concatenation keeps every resolution's features intact). The abstract
reports that the multi-resolution integration outperforms the 20 ms HuBERT alone (the CV-HuBERT
paper found fusing its resolutions worse, docs/pretrain.md section 5; for this scheme the
abstract is the reference).

Padding contract (upstreams/base.py): each member gives each item of a padded batch its valid
frames as if alone, the repetition only reads an item's own valid frames, and frames past the
finest member's lengths are zero; so the fusion keeps the contract.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from harness.errors import HarnessError
from harness.upstream_names import FUSION_PREFIX
from upstreams.base import HiddenStates, Upstream, UpstreamSpec

def repeat_to(h: Tensor, lengths: Tensor, factor: int, frames: int) -> Tensor:
    """Bring (B, T, D) states at `factor` times the finest stride to `frames` finest frames.

    Frame t of the result is source frame min(t // factor, lengths - 1) of its own item: each
    frame repeated `factor` times, the end extended with the item's last valid frame (or cut).

    Args:
        h: (B, T, D) states; frames past `lengths` are padding and never read.
        lengths: (B,) valid source frames (at least 1).
        factor: whole number of finest frames per source frame.
        frames: T_out, the finest member's padded frame count.

    Returns:
        (B, T_out, D).
    """
    t = torch.arange(frames, device=h.device)[None, :] // factor  # (1, T_out)
    idx = torch.minimum(t, (lengths.to(h.device) - 1).clamp(min=0)[:, None])  # (B, T_out)
    return h.gather(1, idx[..., None].expand(-1, -1, h.shape[-1]))


class FusionUpstream(Upstream):
    """Several upstreams, aligned to the finest frame rate and concatenated per layer.

    Args:
        members: upstreams with the same sample rate and number of layers; their frame strides
            must be whole multiples of the finest one.
        name: spec name (default `fusion:` + the members' names joined by `+`).
    """

    def __init__(self, members: Sequence[Upstream], name: Optional[str] = None):
        super().__init__()
        if len(members) < 2:
            raise HarnessError("a fusion needs two or more upstreams")
        self.members = nn.ModuleList(members)
        specs = [m.spec for m in members]
        names = ", ".join(f"{s.name} ({s.num_layers} layers, {1000 / s.frame_rate_hz:g} ms)" for s in specs)
        if len({s.sample_rate for s in specs}) != 1 or len({s.num_layers for s in specs}) != 1:
            raise HarnessError(f"fusion: members need the same sample rate and number of layers: {names}")
        self.finest = min(range(len(specs)), key=lambda i: specs[i].stride)
        base = specs[self.finest].stride
        if any(s.stride % base for s in specs):
            raise HarnessError(f"fusion: every member's frame stride must be a whole multiple of the finest "
                               f"({base} samples): {names}")
        self.factors = [s.stride // base for s in specs]
        self.spec = UpstreamSpec(
            name=name or FUSION_PREFIX + "+".join(s.name for s in specs), family="fusion",
            sample_rate=specs[0].sample_rate, num_layers=specs[0].num_layers,
            hidden_size=sum(s.hidden_size for s in specs), frame_rate_hz=specs[self.finest].frame_rate_hz,
            source=" + ".join(s.source or s.name for s in specs),
        )
        self.eval()

    def num_frames(self, num_samples: Tensor) -> Tensor:
        return self.members[self.finest].num_frames(num_samples)

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> HiddenStates:
        outs = [m(wavs, wav_lens) for m in self.members]
        lengths = outs[self.finest].lengths
        T = outs[self.finest].layers[0].shape[1]
        valid = (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None])[..., None]
        layers = []
        for depth in range(self.spec.num_layers):
            parts = [repeat_to(o.layers[depth], o.lengths, f, T) for o, f in zip(outs, self.factors)]
            layers.append(torch.cat(parts, -1) * valid.to(parts[0].device, parts[0].dtype))
        return HiddenStates(layers=layers, lengths=lengths)
