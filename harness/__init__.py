"""harness: pre-train, probe and rank self-supervised speech models."""

__version__ = "0.1.0"
