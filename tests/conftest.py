import os

import pytest
import torch

# Two xdist workers on two cores: one thread each avoids oversubscription.
torch.set_num_threads(int(os.environ.get("HARNESS_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """The tiny synth corpus, generated once per test session (per xdist worker)."""
    from harness.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", seed=0, workers=1, progress=False)
