"""MS-HuBERT's objective: Swap + multicluster masked prediction (docs/pretrain.md section 3; Yadav, Sitaram
and Shah, "MS-HuBERT: Mitigating Pre-training and Inference Mismatch in Masked Language
Modelling methods for learning Speech Representations", Interspeech 2024, arXiv 2406.05661).

Only pre-training changes: the network is the family's (plain `hubert`), the heads are dropped at
export, and inference is plain HuBERT (s3prl loads the released model as a plain HuBERT).

Swap. The transformer runs on a batch of two views of each utterance: the masked view (masked
frames replaced by the mask embedding, as in HuBERT) and the unmasked view (the same CNN
features, nothing replaced). After every transformer layer that ran, the two views exchange
their outputs at the masked frames (upstreams' `layer_hook`). The CNN runs once: both views
start from the same features. No loss is attached to the unmasked view.

Which states the loss reads (ambiguous in the published text; option `loss_view`):
- "masked_stream" (default): at masked frames, the chain of states that started from the mask
  embedding; it moves to the other row at every exchange, so after layer l it sits in the
  masked view's row when an even number of exchanges happened; unmasked frames from the masked
  view.
- "masked_row": the masked view's row after the exchange, whatever started there.
The two coincide at even layers without LayerDrop (e.g. the paper's example heads on layers
8, 10, 12 of 12).
Both read the unmasked view's content at some layers: that is the method as published
(docs/pretrain.md section 3); measure it with the swap on / off ablation (recipe mshubert_tiny_noswap).

Multicluster masked prediction. `levels` K_0 > K_1 > ... are hierarchical k-means label sets:
level 0 is the iteration's k-means on its features (K_0 = cluster.k), level j is k-means with
K_j on level j-1's centroids, and a frame's level-j label is the level-j cluster of its level-
(j-1) centroid (run.py, labels.derive_labels). Each level has its own head (projection +
codewords, HuBERT's cosine logits) on its own layer; the loss is the sum over levels of the
masked cross-entropy (+ the feature penalty). Each training step drops `drop_sets` levels at
random (generator seeded by (train seed, step): the same on every rank and after a resume);
evaluation drops none. Which level sits on which layer (option `finest_on`, default "last": the
finest level on the last layer, coarser ones on lower head layers): the paper (Section 2.2.2)
maps label sets to layers with a dictionary and notes, in a footnote, that the earlier
multicluster work it adapts (its reference [17], Yadav et al., ICASSP 2023) builds that mapping
in the reverse order. That work's code (github.com/raotnameh/hubert_cluster, commit 0eb0dd7,
fairseq/models/hubert/hubert.py, flag big_to_small, default True) puts the finest set on the
lowest head layer and the coarsest on the last; reversed, MS-HuBERT puts the finest on the last.
The formulas of that section are lost in our copy of the paper, so this reading rests on the
footnote and the reference code; "first" keeps the earlier order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from harness.errors import ConfigError
from harness.pretrain.model import MaskedPredictionModel
from harness.pretrain.objectives.base import LabelStream, Objective
from harness.registry import register_objective

LOSS_VIEWS = ("masked_stream", "masked_row")


@dataclass(frozen=True)
class MSHubertOptions:
    """MS-HuBERT options; defaults = the published Base settings where known (docs/pretrain.md section 3).

    Attributes:
        levels: K of each hierarchical label set, strictly decreasing; levels[0] = cluster.k.
        head_layers: the layer (1..L) of each level's head, in the order of `levels`; () derives
            them: equidistant from `first_head_layer` to the last layer (rounded), the finest
            level on the highest of them (`finest_on` "last", the paper's order) or the lowest.
        first_head_layer: lowest head layer of the derived layout; 0 = L - 2 (n - 1) (every
            second layer up to the last, as the paper's 3-set example 8, 10, 12 of 12), at least 1.
        finest_on: "last" or "first": where levels[0] goes in the derived layout.
        drop_sets: label sets dropped at random in each training step (published: 2).
        swap: run the unmasked view and exchange masked-frame outputs after every layer (False =
            plain multi-head HuBERT on the masked view only, for the ablation).
        loss_view: "masked_stream" or "masked_row" (module docstring).
    """

    levels: Tuple[int, ...] = (1000, 500, 250, 125, 50, 25)
    head_layers: Tuple[int, ...] = ()
    first_head_layer: int = 0
    finest_on: str = "last"
    drop_sets: int = 2
    swap: bool = True
    loss_view: str = "masked_stream"

    def __post_init__(self):
        for name in ("levels", "head_layers"):
            v = tuple(getattr(self, name))
            if not all(float(x).is_integer() for x in v):
                raise ConfigError(f"objective.{name} must be whole numbers, got {list(v)}")
            object.__setattr__(self, name, tuple(int(x) for x in v))
        lv = self.levels
        if not lv or lv[-1] < 2 or any(a <= b for a, b in zip(lv, lv[1:])):
            raise ConfigError(f"objective.levels must be strictly decreasing cluster counts >= 2, got {list(lv)}")
        if self.head_layers and len(self.head_layers) != len(lv):
            raise ConfigError(f"objective.head_layers {list(self.head_layers)}: one layer per level {list(lv)}")
        if self.finest_on not in ("first", "last"):
            raise ConfigError(f"objective.finest_on must be 'first' or 'last', got {self.finest_on!r}")
        if not 0 <= self.drop_sets < len(lv):
            raise ConfigError(f"objective.drop_sets = {self.drop_sets}: must be in [0, {len(lv)}) for "
                              f"{len(lv)} levels (at least one label set is kept)")
        if self.loss_view not in LOSS_VIEWS:
            raise ConfigError(f"objective.loss_view must be one of {', '.join(LOSS_VIEWS)}, got {self.loss_view!r}")
        if self.first_head_layer < 0:
            raise ConfigError(f"objective.first_head_layer must be >= 0, got {self.first_head_layer}")

    def layers(self, num_layers: int) -> List[int]:
        """The head layer of each level (order of `levels`) for a model of `num_layers` layers."""
        L, n = int(num_layers), len(self.levels)
        if self.head_layers:
            out = list(self.head_layers)
        else:
            first = self.first_head_layer or max(1, L - 2 * (n - 1))
            if first > L:
                raise ConfigError(f"objective.first_head_layer = {first}, but the model has {L} layers")
            step = (L - first) / (n - 1) if n > 1 else 0.0
            out = [int(first + step * i + 0.5) for i in range(n)]  # ascending, last = L
            if self.finest_on == "last":
                out = out[::-1]
        if not all(1 <= v <= L for v in out):
            raise ConfigError(f"objective.head_layers {out}: every layer must be in 1..{L}")
        return out


@register_objective("mshubert")
class MSHubert(Objective):
    """Swap + hierarchical multicluster masked prediction (module docstring)."""

    name = "mshubert"
    Options = MSHubertOptions

    def label_streams(self, k: int) -> List[LabelStream]:
        lv = self.options.levels
        if int(k) != lv[0]:
            raise ConfigError(f"objective.levels[0] = {lv[0]} must equal cluster.k = {k} (level 0 is the "
                              "k-means of the iteration's features)")
        names = [f"km{v}" for v in lv]
        return [LabelStream(names[0], lv[0])] + [LabelStream(names[j], lv[j], names[j - 1]) for j in range(1, len(lv))]

    def check(self, iteration: Any) -> None:
        if iteration.cluster.method != "kmeans":  # the hierarchy is fitted on level 0's centroids
            raise ConfigError(f"objective mshubert needs cluster.method kmeans, got {iteration.cluster.method!r}")
        self.label_streams(iteration.cluster.k)
        self.options.layers(iteration.model.encoder_layers)

    @property
    def skips_parameters(self) -> bool:
        return self.options.drop_sets > 0

    def build_model(self, encoder: nn.Module, streams: Sequence[LabelStream], train_cfg: Any) -> nn.Module:
        o = self.options
        return MultiClusterSwapModel(encoder, [(s.name, s.k) for s in streams], o.layers(encoder.config.encoder_layers),
                                     swap=o.swap, drop_sets=o.drop_sets, loss_view=o.loss_view, seed=train_cfg.seed,
                                     logit_temp=train_cfg.logit_temp, feature_pen=train_cfg.feature_pen,
                                     nomask_weight=train_cfg.pred_nomask_weight)


def exchange_masked(h: Tensor, mask: Tensor) -> Tensor:
    """Swap: h (2B, T, D) = [masked view; unmasked view] -> the same with the two views' frames
    exchanged where mask (B, T) is True; other frames untouched."""
    B = mask.shape[0]
    sel = mask[..., None]
    a, b = h[:B], h[B:]
    return torch.cat([torch.where(sel, b, a), torch.where(sel, a, b)])


class MultiClusterSwapModel(MaskedPredictionModel):
    """MaskedPredictionModel with one head per label set on its own layer, the Swap forward, and
    `drop_sets` label sets left out of each training step's loss.

    Args:
        encoder: a HubertEncoder (or a family built on its front end, e.g. WavLM).
        streams: (name, K) per label set; layers: the head layer of each.
        swap: run the two swapped views (else the masked view alone).
        drop_sets: label sets dropped per training step; seed: the training seed they derive from.
        loss_view: "masked_stream" or "masked_row" (module docstring).
    """

    def __init__(self, encoder: nn.Module, streams: Sequence[Tuple[str, int]], layers: Sequence[int],
                 swap: bool = True, drop_sets: int = 0, loss_view: str = "masked_stream", seed: int = 1, **kw):
        super().__init__(encoder, streams, layers=layers, **kw)
        if not 0 <= drop_sets < len(self.streams) or loss_view not in LOSS_VIEWS:
            raise ValueError(f"drop_sets {drop_sets} for {len(self.streams)} streams, loss_view {loss_view!r}")
        self.swap, self.drop_sets, self.loss_view, self.seed = bool(swap), int(drop_sets), loss_view, int(seed)

    def dropped(self, step: Optional[int]) -> List[str]:
        """Names of the label sets left out at training step `step` (none when step is None)."""
        if step is None or self.drop_sets == 0:
            return []
        from harness.pretrain.batches import derive_seed  # (batches imports the objectives)

        g = torch.Generator().manual_seed(derive_seed(self.seed, 2718281, int(step)))
        pick = torch.randperm(len(self.streams), generator=g)[: self.drop_sets]
        return [self.streams[i][0] for i in sorted(pick.tolist())]

    def swapped_states(self, wavs: Tensor, wav_lens: Optional[Tensor], mask: Tensor):
        """The two views through the transformer with the exchange after every layer that ran.

        Returns (states, padding_mask, features): num_layers + 1 tensors (B, T, D), the masked
        view as `loss_view` reads it (module docstring), and the encoder's padding mask and CNN
        features."""
        enc = self.encoder
        x, feats, _, pad = enc.front_end(wavs, wav_lens)
        exchanged: List[int] = []

        def hook(i: int, h: Tensor) -> Tensor:
            exchanged.append(i)
            return exchange_masked(h, mask)

        two = enc.transformer_states(torch.cat([enc.apply_mask(x, mask), x]), torch.cat([pad, pad]), None, hook)
        B, sel = x.shape[0], mask[..., None]
        states = []
        for layer, h in enumerate(two):
            in_other_row = sum(1 for i in exchanged if i <= layer) % 2 == 1
            if self.loss_view == "masked_stream" and in_other_row:
                states.append(torch.where(sel, h[B:], h[:B]))
            else:
                states.append(h[:B])
        return states, pad, feats

    def forward(self, wavs: Tensor, labels: Dict[str, Tensor], mask: Tensor,
                wav_lens: Optional[Tensor] = None, step: Optional[int] = None) -> Dict[str, Tensor]:
        """As MaskedPredictionModel.forward; `step` (training) decides the dropped label sets."""
        if self.swap:
            states, pad, feats = self.swapped_states(wavs, wav_lens, mask)
        else:
            out = self.encoder(wavs, wav_lens, mask=mask)
            states, pad, feats = out.hidden_states, out.padding_mask, out.features
        drop = set(self.dropped(step))
        return self.masked_loss(states, labels, mask, pad, feats, [n for n, _ in self.streams if n not in drop])
