"""data2vec's objective (audio; docs/pretrain.md section 9): regress, at masked frames, an EMA
teacher's averaged top layers.

Baevski, Hsu, Xu, Babu, Gu and Auli, "data2vec: A General Framework for Self-supervised Learning
in Speech, Vision and Language", ICML 2022. Reference read (values and semantics, not code):
github.com/facebookresearch/fairseq, commit 325daafecf9901097797f9157dec737f824c7811,
examples/data2vec/models/data2vec_audio.py and
examples/data2vec/config/audio/pretraining/base_librispeech.yaml; the EMA update in
fairseq/modules/ema_module.py (commit 96b5e0a1f364925384ceca663e160c695ca57c86).

- Student: the family's encoder on the masked input (HuBERT's span masks, mask embedding).
- Teacher: an exponential moving average of the student's transformer stack (positional conv,
  its LN, the layers), no gradient, in eval mode (no dropout, no LayerDrop), run on the same
  front-end output without masking. It shares the student's front end (CNN, LN, projection):
  fairseq's ema_transformer_only (true in Base), teacher input taken before dropout_input. With
  ema_layers_only (true in Base) the positional conv is not averaged but copied from the student
  at every update (fairseq's skip_keys). The teacher starts as a copy of the student's stack
  (fairseq builds its EMA copy from the student before the first update); a state without a
  teacher (a warm start from another objective's encoder) restarts it from the loaded student.
- Targets: the outputs of the top K layers (average_top_k_layers, Base 8 of 12). Which output:
  fairseq's layer_results[2], the feed-forward block's output (fc2, before dropout and the
  final residual), not the layer's output. Our encoder returns layer outputs only, so the
  teacher's fc2 outputs are read with forward hooks on its top K layers' `fc2` (HuBERT and
  WavLM layers both have it). Each is instance-normalised over time per item and channel
  (instance_norm_target_layer, true in Base; mean and biased variance over the item's valid
  frames, eps 1e-5: F.instance_norm on an unpadded item), then averaged; layer_norm_targets (false
  in Base) layer-normalises the average over channels.
- Loss: a linear head (final_proj, D -> D, PyTorch's default init as fairseq's) on the student's
  last state at masked frames; squared error summed over channels (loss_beta 0, Base: L2;
  beta > 0: smooth L1 with that beta), times loss_scale (0 = 1/sqrt(D), fairseq's loss_scale
  None), summed over masked frames; the loop divides by the global masked-frame count (fairseq's
  sample_size). No feature penalty (fairseq's data2vec has none).
- EMA decay tau after update n: linear from ema_decay (0.999) at n = 0 to ema_end_decay (0.9999)
  at n = ema_anneal_end_step (30000; 0 = the run's steps, fairseq's default max_update), then
  constant; teacher <- tau * teacher + (1 - tau) * student, parameter by parameter (fp32), after
  every update (fairseq's set_num_updates); tau >= 1 leaves the teacher as it is.
- Masking (train.mask_prob 0.65, mask_length 10, min_masks 1 in fairseq) and the optimiser are
  the recipe's train table; fairseq's tri-stage schedule is not available (linear warm-up and
  decay instead; the recipes say so).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError
from harness.pretrain.objectives.base import LabelStream, Objective
from harness.registry import register_objective


@dataclass(frozen=True)
class Data2VecOptions:
    """data2vec options; defaults = fairseq's data2vec audio Base (module docstring).

    Attributes:
        average_top_k_layers: K, the teacher layers averaged into the target (1..L).
        instance_norm_target_layer: instance-normalise each layer's output over time first.
        layer_norm_targets: layer-normalise the average over channels.
        ema_decay, ema_end_decay: tau at update 0 and from ema_anneal_end_step on.
        ema_anneal_end_step: updates of the linear anneal (0 = the run's train.steps).
        ema_layers_only: copy the positional conv from the student instead of averaging it.
        loss_beta: 0 = squared error; > 0 = smooth L1 with this beta.
        loss_scale: factor of the summed loss (0 = 1 / sqrt(encoder_dim)).
    """

    average_top_k_layers: int = 8
    instance_norm_target_layer: bool = True
    layer_norm_targets: bool = False
    ema_decay: float = 0.999
    ema_end_decay: float = 0.9999
    ema_anneal_end_step: int = 30000
    ema_layers_only: bool = True
    loss_beta: float = 0.0
    loss_scale: float = 0.0

    def __post_init__(self):
        if self.average_top_k_layers < 1:
            raise ConfigError(f"objective.average_top_k_layers must be >= 1, got {self.average_top_k_layers}")
        for name in ("ema_decay", "ema_end_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"objective.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.ema_anneal_end_step < 0:
            raise ConfigError(f"objective.ema_anneal_end_step must be >= 0 (0 = train.steps), got {self.ema_anneal_end_step}")
        for name in ("loss_beta", "loss_scale"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"objective.{name} must be a finite number >= 0, got {getattr(self, name)!r}")


def ema_decay(step: int, start: float, end: float, anneal_steps: int) -> float:
    """tau after `step` updates: start + (end - start) * step / anneal_steps up to anneal_steps,
    then end (fairseq's get_annealed_rate)."""
    if start == end or step >= anneal_steps:
        return float(end)
    return float(end - (end - start) * (1.0 - step / anneal_steps))


def instance_norm_time(y: Tensor, valid: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """y (B, T, C) normalised per item and channel over its valid frames (valid (B, T) bool,
    None = all): (y - mean) / sqrt(biased var + eps); padded frames come out as whatever they
    were minus the mean (the loss never reads them)."""
    w = torch.ones_like(y[..., :1]) if valid is None else valid[..., None].to(y.dtype)
    n = w.sum(1, keepdim=True).clamp_min(1.0)
    mean = (y * w).sum(1, keepdim=True) / n
    var = ((y - mean) * w).pow(2).sum(1, keepdim=True) / n
    return (y - mean) * torch.rsqrt(var + eps)


def make_targets(layer_outputs: Sequence[Tensor], valid: Optional[Tensor] = None, instance_norm: bool = True,
                 layer_norm: bool = False) -> Tensor:
    """The regression target (B, T, C) float32 from the top K layers' outputs (each (B, T, C)):
    each instance-normalised over time (instance_norm), averaged, then layer-normalised over
    channels (layer_norm)."""
    ys = [instance_norm_time(y.float(), valid) if instance_norm else y.float() for y in layer_outputs]
    y = sum(ys) / len(ys)
    return F.layer_norm(y, y.shape[-1:]) if layer_norm else y


@register_objective("data2vec")
class Data2Vec(Objective):
    """Masked regression of an EMA teacher's averaged, instance-normalised top layers (module
    docstring); no labels."""

    name = "data2vec"
    Options = Data2VecOptions
    needs_labels = False

    def check(self, iteration: Any) -> None:
        L, k = iteration.model.encoder_layers, self.options.average_top_k_layers
        if k > L:
            raise ConfigError(f"objective.average_top_k_layers = {k}, but the model has {L} layers")

    def build_model(self, encoder: nn.Module, streams: Sequence[LabelStream], train_cfg: Any) -> nn.Module:
        return Data2VecModel(encoder, self.options)

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        o = self.options
        tau = ema_decay(step, o.ema_decay, o.ema_end_decay, o.ema_anneal_end_step or total_steps)
        model.update_teacher(tau)


class Data2VecModel(nn.Module):
    """Student encoder + final_proj, and the EMA teacher (`teacher`: a copy of the encoder's
    transformer stack, requires_grad False, in the state dict and so in every checkpoint).

    Args:
        encoder: a HubertEncoder (or a family on its front end, e.g. WavLM) whose stack's layers
            have an `fc2` (the feed-forward output layer).
        options: Data2VecOptions.
    """

    def __init__(self, encoder: nn.Module, options: Data2VecOptions):
        super().__init__()
        self.encoder, self.options, self.config = encoder, options, encoder.config
        L, k = self.config.encoder_layers, options.average_top_k_layers
        if not 1 <= k <= L:
            raise ConfigError(f"objective.average_top_k_layers = {k}: must be in 1..{L} (the model's layers)")
        if not all(hasattr(layer, "fc2") for layer in encoder.encoder.layers):
            raise ConfigError(f"objective data2vec reads each layer's fc2 output; {type(encoder).__name__}'s layers have none")
        dim = self.config.encoder_dim
        self.final_proj = nn.Linear(dim, dim)
        self.teacher = copy.deepcopy(encoder.encoder)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.scale = options.loss_scale or 1.0 / math.sqrt(dim)

    def train(self, mode: bool = True) -> "Data2VecModel":
        super().train(mode)
        self.teacher.eval()  # the teacher never drops anything
        return self

    @torch.no_grad()
    def reset_teacher(self) -> None:
        """Teacher <- the student's stack (a fresh start from the current student)."""
        self.teacher.load_state_dict(self.encoder.encoder.state_dict())

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's; a state without teacher weights (another objective's encoder, a warm
        start) restarts the teacher from the loaded student."""
        res = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if not any(key.startswith("teacher.") for key in state_dict):
            self.reset_teacher()
        return res

    @torch.no_grad()
    def update_teacher(self, tau: float) -> None:
        """teacher <- tau * teacher + (1 - tau) * student for every floating tensor of the stack,
        except the positional conv (copied) with ema_layers_only; nothing when tau >= 1."""
        if tau >= 1.0:
            return
        student = self.encoder.encoder.state_dict()
        for key, t in self.teacher.state_dict().items():
            s = student[key]
            if not t.is_floating_point() or (self.options.ema_layers_only and key.startswith("pos_conv.")):
                t.copy_(s)
            else:
                t.mul_(tau).add_(s.to(t.dtype), alpha=1.0 - tau)

    @torch.no_grad()
    def teacher_layers(self, x: Tensor, padding_mask: Tensor) -> List[Tensor]:
        """The fc2 outputs (B, T, D) of the teacher's top K layers on the unmasked input x."""
        layers = self.teacher.layers
        top = range(len(layers) - self.options.average_top_k_layers, len(layers))
        got: List[Tensor] = []
        hooks = [layers[i].fc2.register_forward_hook(lambda m, inp, out: got.append(out)) for i in top]
        try:
            self.teacher(x, padding_mask)
        finally:
            for h in hooks:
                h.remove()
        if len(got) != len(top):  # eval mode runs every layer; a family that skips one breaks this
            raise RuntimeError(f"teacher ran {len(got)} of its top {len(top)} layers")
        return got

    def forward(self, wavs: Tensor, labels: Dict[str, Tensor], mask: Tensor,
                wav_lens: Optional[Tensor] = None, step: Optional[int] = None) -> Dict[str, Tensor]:
        """wavs (B, S); labels: ignored ({} from the loop); mask (B, T) bool; wav_lens (B,) | None.

        Returns loss (summed scaled regression loss over masked frames), ce (the same,
        detached), n_masked, n_unmasked (valid frames), correct_masked = correct_unmasked = 0
        (no classes)."""
        enc = self.encoder
        x, feats, _, pad = enc.front_end(wavs, wav_lens)
        if mask.shape != x.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} must be (B, T) = {tuple(x.shape[:2])}")
        with torch.no_grad():
            clean = x
            if self.training and enc.dropout_input.p > 0:  # the teacher sees the features before dropout
                clean = enc.post_extract_proj(enc.layer_norm(feats))
            y = make_targets(self.teacher_layers(clean, pad), ~pad, self.options.instance_norm_target_layer,
                             self.options.layer_norm_targets)
        last = enc.encoder(enc.apply_mask(x, mask), pad)[-1]
        m = mask & ~pad
        pred = self.final_proj(last[m]).float()
        if self.options.loss_beta == 0:
            per = (pred - y[m]).pow(2).sum(-1)
        else:
            per = F.smooth_l1_loss(pred, y[m], reduction="none", beta=self.options.loss_beta).sum(-1)
        loss = per.sum() * self.scale
        zero = m.new_zeros((), dtype=torch.long)
        return {"loss": loss, "ce": loss.detach(), "n_masked": m.sum(), "correct_masked": zero,
                "n_unmasked": (~mask & ~pad).sum(), "correct_unmasked": zero}
