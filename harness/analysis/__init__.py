"""Layer analysis: what each hidden layer of an upstream encodes, measured directly.

One module per measure, each a set of pure functions on numpy arrays:

  cca.py          canonical correlations (SVD-reduced, QR/SVD) and projection-weighted CCA
  mi.py           entropy and mutual information of discrete labels; k-means cluster MI
  labels.py       frame-level labels from a corpus's alignments and speakers
  probe_layer.py  the task probe on one layer alone (the existing probe loop, one layer)
  run.py          `harness analyze`: read the feature cache, run the measures, write a run folder

See docs/analysis.md for what each number means and its known biases.
"""
