"""Corpora: the embedded `synth` generator, real-corpus loaders, audio batching."""
