"""The leaderboard (docs/design.md section 8), by concept; harness.leaderboard is its public entry.

Imports run one way, leaves first: ``markdown`` (cells and tables; imports nothing of the board),
``ranks``, ``versions``, ``absolute``, ``pooling``, ``manifest``, ``layer_text``, ``export`` (read
rows only); ``loader`` (run folders -> one DataFrame row per finished run) and ``select`` (the
runs pooled and the one best-lr rule, ``select_lr``); the section renderers (``flags``,
``task_section``, ``summary``, ``mlsuperb_section``, ``seed_comparisons``, ``learning_curves``,
``layer_section``, ``analysis_section``, with harness.ablation and harness.diagnostics); and
``page``, which assembles a page per corpus and writes the board. Nothing here imports
harness.leaderboard (tests/unit/test_import_graph.py checks that the graph has no cycle)."""
