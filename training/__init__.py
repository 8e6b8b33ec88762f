"""VATT pretraining: data, losses, schedule, DDP trainer, evaluation and the synthetic corpus.

Imports ``model``; nothing imports ``training`` except the CLI (lazily). Entry points, each a
``main(argv)``: ``training.pretrain`` (``vatt train``), ``training.evaluate`` (``vatt eval``)
and ``training.synthetic`` (``vatt synth``). Submodules are imported on use so that importing
the package stays cheap.
"""

from __future__ import annotations

__all__ = ["captions", "errors", "checkpoint", "classify", "config", "data", "datasets", "finetune", "labels", "probe", "views", "distributed", "evaluate", "losses", "params", "pretrain", "schedule", "synthetic"]
