"""`probe_layer`: a task's probe on one hidden layer alone.

The probe is the harness's own (harness/probe.py train_probe: same head, loss, dev-best
selection and test scoring as `harness eval`); only its input changes. The feature source hands
the probe one layer, and the upstream spec says L+1 = 1, so the weighted sum holds a single
softmax weight (exactly 1) and never layer-norms it (harness/featurizer.py): the probe reads that
layer as it is. This is what "weights fixed to the one-hot of layer l" would give, without a
code path in the probe loop that only the analysis uses.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Sequence

from harness.features import FeatureSource


class OneLayerSource(FeatureSource):
    """A view of a FeatureSource whose batches hold only layer `layer` ((1, B, T, D))."""

    def __init__(self, source: FeatureSource, layer: int):
        self.__dict__.update(source.__dict__)  # same ids, pools, upstream and skip list
        self.layer = layer
        # read by harness.batches (host_batch, live_batch): only this layer leaves the cache, on
        # every path the probe takes (its prefetcher as well as get_batch)
        self.layer_slice = slice(layer, layer + 1)


def probe_layers(task, splits, sources: Dict[str, FeatureSource], spec, cfg, lr: float, layers: Sequence[int],
                 log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Train one probe per layer in `layers`; return per layer its dev and test metrics.

    Args:
        task, splits, sources: as for harness.probe.train_probe (all layers in `sources`).
        spec: the upstream's UpstreamSpec (its num_layers is replaced by 1 for the probe).
        cfg: the ProbeConfig (steps, seed, ...), lr: the learning rate.
        layers: layer indices 0..L (0: the upstream's first hidden state, its CNN/projection output).

    Returns:
        [{"layer", "dev", "test", "best_step", "train_s", "learned_nothing"}] in `layers` order.
    """
    from harness.probe import train_probe

    one = dataclasses.replace(spec, num_layers=1)
    out = []
    for layer in layers:
        srcs = {s: OneLayerSource(src, layer) for s, src in sources.items()}
        t0 = time.time()
        o = train_probe(task, splits, srcs, one, cfg, lr, log=log, desc=f"{spec.name} / {task.name} layer {layer}")
        out.append({"layer": layer, "dev": o.dev, "test": o.test, "best_step": o.best_step,
                    "train_s": round(time.time() - t0, 2), "learned_nothing": o.learned_nothing})
    return out
