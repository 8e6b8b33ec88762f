"""Bulk embedding under torchrun: files, directories and manifests -> Parquet shards (see run.py)."""

from .run import main
from .worklist import Input, ShardPlan, collect, plan_shards

__all__ = ["main", "Input", "ShardPlan", "collect", "plan_shards"]
