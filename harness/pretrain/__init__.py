"""Self-supervised pre-training from raw audio: HuBERT, WavLM, WavLabLM (docs/pretrain.md; docs/design.md section 6).

    from harness.pretrain import pretrain
    upstream_dir = pretrain("hubert_tiny", "data/synth/small", Path("runs/pretrain/hubert_tiny"))

Modules, in pipeline order: recipe (YAML recipes), dump (MFCC / layer features in shards),
cluster (faiss k-means), labels (nearest centroid at the model's frame rate, length checks),
quality (PNMI, purity), model (masked prediction around any family's encoder), mixing (WavLM's
utterance mixing), objectives/ (the objective plugins: label streams, model, batch transform),
batches (the step-indexed global batches), checkpoint (checkpoints, RNG states, log), distributed
(torchrun process group, device), loop (training, DDP, resume), label_stages (features, clusters
and labels of an iteration), export (final and step exports, provenance), utterances (data
selection), run_folder (recipe.json identity, reuse of finished iterations), run (the stages
chained per iteration). The model family comes from upstreams/<family>.py through
upstreams.base.Family.
"""

__all__ = ["pretrain", "load_recipe", "available_recipes", "Recipe"]
_WHERE = {"pretrain": "harness.pretrain.run", "load_recipe": "harness.pretrain.recipe_load",
          "available_recipes": "harness.pretrain.recipe_files", "Recipe": "harness.pretrain.recipe"}


def __getattr__(name):
    # imported on first use: `harness.pretrain.recipe_files` (the CLI's recipe-name check) must not pull
    # in torch through run.py
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'harness.pretrain' has no attribute {name!r}")
