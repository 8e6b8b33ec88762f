"""Bulk embedding under torchrun: files, directories and manifests -> Parquet shards (see run.py)."""

from .run import main, model_identity
from .worklist import Input, ShardPlan, collect, plan_shards

__all__ = ["main", "model_identity", "Input", "ShardPlan", "collect", "plan_shards"]
