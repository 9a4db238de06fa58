"""`s3prl:NAME:FILE`: an s3prl upstream built by s3prl's own hub entry `NAME_local` (or `NAME`
when it already ends in `_local`) from the local checkpoint FILE, e.g.
`s3prl:hubert:ckpt/hubert_base_ls960.pt` (s3prl's converted HuBERT format: task_cfg, model_cfg,
model_weight, dictionaries_symbols) or `s3prl:wavlm:WavLM-Base+.pt` (cfg, model).

s3prl runs the model (no mapping into the project's families): its S3PRLUpstream collects the
hidden states and sets their lengths by its own convention, (samples - 1) // stride + 1 frames
(shorter model outputs are padded with their last frame, as in SUPERB). s3prl's experts cannot
promise that padding leaves the valid frames alone (wav2vec 2.0 / HuBERT Base group-normalise the
first CNN layer over the whole padded time axis), so each item runs alone.

`export_s3prl` writes a project upstream in the format of the s3prl entry its family's s3prl
conversion (`Family.sources["s3prl"]`, upstreams/base_conversion.py) names (`harness export
--format s3prl`); the family builds the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import SAMPLE_RATE, HiddenStates, Upstream, UpstreamSpec
from upstreams.base_conversion import exporting


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
        raise HarnessError(f"s3prl:{rest}: expected s3prl:NAME:FILE (NAME an s3prl hub entry that reads a local "
                           f"checkpoint, FILE that checkpoint)")
    return S3prlUpstream(name, ckpt)


# ----------------------------------------------------------------------------- export


def export_s3prl(upstream: Upstream, out: Union[str, Path]) -> Path:
    """Write a project upstream whose family has an s3prl conversion as the checkpoint that
    conversion's s3prl entry reads, `out/<folder name>.pt`; returns that file.

    Raises:
        HarnessError: another family, or a model the entry's network cannot represent.
    """
    _, conv = exporting(upstream, "s3prl")
    checkpoint = conv.checkpoint(upstream.encoder, upstream.spec.name)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{folder.resolve().name}.pt"
    torch.save(checkpoint, path)
    return path
