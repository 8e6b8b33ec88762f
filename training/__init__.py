"""VATT pretraining: data, losses, schedule, DDP trainer, evaluation and the synthetic corpus.

Imports ``model``; nothing imports ``training`` except the CLI (lazily). Entry points, each a
``main(argv)``: ``training.pretrain`` (``vatt train``), ``training.evaluate`` (``vatt eval``)
and ``training.synthetic`` (``vatt synth``), ``training.finetune`` (``vatt finetune``), ``training.probe``
(``vatt probe``) and ``training.datasets`` (``vatt datasets``). Submodules are imported on use so that importing
the package stays cheap.
"""

from __future__ import annotations

__all__ = ["captions", "errors", "checkpoint", "classify", "colour", "config", "data", "datasets", "finetune",
           "labels", "probe", "views", "word_embeddings", "distributed", "evaluate", "losses", "params", "pretrain",
           "schedule", "synthetic"]
