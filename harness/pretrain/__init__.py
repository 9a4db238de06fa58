"""HuBERT pre-training from raw audio (PRETRAIN.md 1, 6, 7; DESIGN.md 6).

    from harness.pretrain import pretrain
    upstream_dir = pretrain("hubert_tiny", "data/synth/small", Path("runs/pretrain/hubert_tiny"))

Modules, in pipeline order: recipe (YAML recipes), dump (MFCC / layer features in shards),
cluster (faiss k-means), labels (nearest centroid, 50 Hz, length checks), quality (PNMI, purity),
model (masked prediction around upstreams.hubert.HubertEncoder), loop (training, DDP, resume),
run (the stages chained per iteration, export).
"""

from harness.pretrain.recipe import Recipe, available_recipes, load_recipe
from harness.pretrain.run import pretrain

__all__ = ["pretrain", "load_recipe", "available_recipes", "Recipe"]
