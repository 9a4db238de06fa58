"""Pre-training at scale (issue 30 item 5): train.device auto never falls back to the CPU on a
machine whose GPU torch cannot use; clustering threads are set explicitly; cluster.gpu needs a
faiss with GPU support and says so in one line."""

import os
import types

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, HarnessError
from harness.pretrain import cluster as clus
from harness.pretrain import distributed
from harness.pretrain.recipe import ClusterConfig


def test_auto_is_cpu_without_a_gpu_and_an_error_with_an_unusable_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(distributed, "gpu_present", lambda: None)
    assert distributed.resolve_device("auto") == "cpu"
    monkeypatch.setattr(distributed, "gpu_present", lambda: "/dev/nvidia0 exists")
    with pytest.raises(HarnessError) as e:
        distributed.resolve_device("auto")
    msg = str(e.value)
    assert "\n" not in msg and "/dev/nvidia0 exists" in msg and "train.device=cpu" in msg
    assert distributed.resolve_device("cpu") == "cpu"  # asked for the CPU: no question asked
    with pytest.raises(HarnessError, match="train.device is cuda but no GPU is usable"):
        distributed.resolve_device("cuda")


def test_gpu_present_reads_the_slurm_assignment(monkeypatch):
    monkeypatch.setattr(distributed.Path, "glob", lambda self, pat: iter(()))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert distributed.gpu_present() == "CUDA_VISIBLE_DEVICES=0,1"
    for none in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", none)
        assert distributed.gpu_present() is None


def test_cluster_threads_are_explicit_not_torchruns_one(monkeypatch):
    import faiss

    x = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    res = clus.fit_kmeans(x, 4, niter=3, threads=2)
    assert faiss.omp_get_max_threads() == 2 and res.centroids.shape == (4, 8)
    torch.set_num_threads(1)
    torch_threads = torch.get_num_threads()
    with clus.omp_threads(2):
        assert faiss.omp_get_max_threads() == 2
    assert torch.get_num_threads() == torch_threads  # the ranks' training keeps its own count
    assert clus.cpu_cores() == len(os.sched_getaffinity(0))
    assert ClusterConfig().threads == 0 and ClusterConfig(threads=3).threads == 3
    with pytest.raises(ConfigError, match="cluster.threads must be an integer >= 0"):
        ClusterConfig(threads=-1)


def test_cluster_gpu_needs_faiss_gpu(monkeypatch):
    import faiss

    with pytest.raises(ConfigError, match="cluster.gpu applies to method 'kmeans' only"):
        ClusterConfig(method="ivf", gpu=True)
    x = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    cpu_only = types.SimpleNamespace(__version__="1.0-cpu", get_num_gpus=lambda: 0, omp_set_num_threads=lambda n: None)
    monkeypatch.setitem(__import__("sys").modules, "faiss", cpu_only)
    with pytest.raises(HarnessError) as e:
        clus.fit_kmeans(x, 4, niter=2, gpu=True)
    assert "no GPU support" in str(e.value) and "faiss-gpu" in str(e.value) and "\n" not in str(e.value)
    no_device = types.SimpleNamespace(__version__="1.0-gpu", get_num_gpus=lambda: 0, StandardGpuResources=object,
                                      omp_set_num_threads=lambda n: None)
    monkeypatch.setitem(__import__("sys").modules, "faiss", no_device)
    with pytest.raises(HarnessError, match="faiss sees no GPU here"):
        clus.fit_kmeans(x, 4, niter=2, gpu=True)
    monkeypatch.undo()
    assert hasattr(faiss, "Kmeans")
