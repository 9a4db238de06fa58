"""What a model family declares for each checkpoint source (`Family.sources`, upstreams/base.py):
how its config and weights are read from (and written to) that source's format.

The source modules (upstreams/source_hf.py, source_fairseq.py, source_torchaudio.py,
source_s3prl.py) only read and write the container (a transformers folder, a fairseq pickle, a
torchaudio state dict, an s3prl checkpoint) and ask the registered families, through
`families_with`, which one reads a given checkpoint; everything that depends on the network (config
fields, parameter names, keys a format leaves out) is the family's, in these conversions. A source
module names no family (tests/unit/test_family_contract.py checks it).
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Sequence, Tuple

from torch import Tensor, nn

from harness.errors import HarnessError


class Conversion(abc.ABC):
    """The weights of one source format, both ways."""

    @abc.abstractmethod
    def state_dict(self, sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The source's state dict -> our parameter names; keys the encoder has no use for
        (pre-training heads) are dropped.

        Raises:
            HarnessError: naming the first key with no counterpart.
        """

    def complete(self, sd: Dict[str, Tensor], encoder: nn.Module) -> Dict[str, Tensor]:
        """`sd` (our names) plus what this format leaves out by design, taken from `encoder` (the
        freshly built one, e.g. a mask embedding only pre-training uses). Default: nothing."""
        return sd


class HfConversion(Conversion):
    """A transformers model folder (config.json + weights), read and written.

    Attributes:
        model_types: the config.json `model_type` values this family reads.
        architecture: the transformers model class it reads and writes ("HubertModel"), for messages.
    """

    model_types: Tuple[str, ...]
    architecture: str

    @abc.abstractmethod
    def config(self, cfg: Dict[str, Any], normalize: bool, where: str) -> Any:
        """The family config of a config.json dict; `normalize`: the preprocessor's do_normalize.

        Raises:
            HarnessError: naming the first field whose value the family cannot represent.
        """

    @abc.abstractmethod
    def hf_config(self, config: Any, transformers: Any, where: str) -> Any:
        """The transformers config (a PretrainedConfig whose model_type is one of `model_types`)
        of a family config; `transformers` is the imported package.

        Raises:
            HarnessError: when the transformers model cannot represent the config.
        """

    @abc.abstractmethod
    def preprocessor(self, config: Any) -> Dict[str, Any]:
        """Wav2Vec2FeatureExtractor settings beside an export (do_normalize, return_attention_mask)."""


class FairseqConversion(Conversion):
    """A fairseq / unilm pre-training checkpoint (`model` state dict + its model config fields)."""

    @abc.abstractmethod
    def claims(self, cfg: Dict[str, Any], keys: Sequence[str]) -> bool:
        """True when the checkpoint with model config `cfg` and weight names `keys` is this
        family's network (exactly one registered family may claim a checkpoint)."""

    @abc.abstractmethod
    def config(self, cfg: Dict[str, Any], normalize: bool) -> Any:
        """The family config of fairseq model fields (absent fields: the format's defaults);
        `normalize`: the task's per-waveform normalisation.

        Raises:
            HarnessError: naming a field the family cannot represent.
        """


class TorchaudioConversion(Conversion):
    """The state dict of a torchaudio `torchaudio.models.<preset>` factory model.

    Attributes:
        prefixes: the factory names this family reads start with one of these ("hubert_").
    """

    prefixes: Tuple[str, ...]

    @abc.abstractmethod
    def config(self, preset: str) -> Any:
        """The family config of the model factory `preset` builds (read from the factory itself).

        Raises:
            HarnessError: torchaudio has no such factory.
        """


class S3prlConversion(abc.ABC):
    """A checkpoint that s3prl's hub entry `entry` reads (export only: s3prl runs what it loads).

    Attributes:
        entry: the s3prl hub entry that reads the written checkpoint ("hubert_local").
    """

    entry: str

    @abc.abstractmethod
    def checkpoint(self, encoder: nn.Module, where: str) -> Dict[str, Any]:
        """The checkpoint (plain values and tensors only) `entry` loads with `encoder`'s weights.

        Raises:
            HarnessError: when s3prl's network cannot represent the encoder.
        """


def families_with(source: str) -> List[Tuple[Any, Any]]:
    """(family, its conversion) of every registered family that declares `source`, by name."""
    from harness.registry import FAMILIES, load_all

    load_all()
    return [(f, f.sources[source]) for f in map(FAMILIES.get, FAMILIES.names()) if source in f.sources]


def names(items: Sequence[str], last: str = "and") -> str:
    """"a", "a and b", "a, b and c" (`last`: the word before the last item)."""
    items = list(items)
    return f" {last} ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def exporting(upstream: Any, source: str) -> Tuple[Any, Any]:
    """(family, conversion) that writes `upstream` in `source`'s format (`harness export --format`).

    Raises:
        HarnessError: the upstream is not a registered family's, or its family has no conversion
            to that source (naming the families that have one).
    """
    for fam, conv in families_with(source):
        if fam.name == upstream.spec.family and isinstance(upstream, fam.upstream_cls):
            return fam, conv
    known = names([f.name for f, _ in families_with(source)])
    raise HarnessError(f"{upstream.spec.name}: --format {source} exports the {known} families, "
                       f"not {upstream.spec.family!r}")
