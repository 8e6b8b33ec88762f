"""Worker processes never fork a process that has loaded gRPC (pymilvus), and forkserver workers
give the very samples fork workers give."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import training.data
from model import load_tokenizer
from training.data import ClipDataset, read_manifest
from training.workers import loader_context, worker_context


def test_grpc_in_the_process_turns_fork_into_forkserver() -> None:
    assert worker_context(loaded={"numpy", "torch"}).get_start_method() == "fork"
    assert worker_context(loaded={"numpy", "grpc"}).get_start_method() == "forkserver"
    assert loader_context(0) is None


def test_forkserver_workers_decode_and_load_the_same_samples(corpus: Path, tokenizer_dir: Path, monkeypatch) -> None:
    items = read_manifest(corpus / "train.jsonl")[:6]

    def dataset() -> ClipDataset:
        return ClipDataset(items, num_frames=8, fps=2.5, image_size=48, sample_rate=16000,
                           tokenizer=load_tokenizer(tokenizer_dir), seed=5)

    forked, served = dataset(), dataset()
    forked.preload(workers=1)
    monkeypatch.setattr(training.data, "worker_context", lambda: multiprocessing.get_context("forkserver"))
    served.preload(workers=2)
    for a, b in zip(forked._decoded, served._decoded):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    loader = DataLoader(served, batch_size=3, num_workers=2, multiprocessing_context=multiprocessing.get_context("forkserver"))
    batches = list(loader)
    assert len(batches) == 2
    for i, sample in enumerate(forked[j] for j in range(6)):
        got = batches[i // 3]
        assert torch.equal(got["video"][i % 3], torch.as_tensor(sample["video"]))
