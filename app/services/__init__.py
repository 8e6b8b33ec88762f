"""The service's work, apart from HTTP: batching, encoding, ingest jobs, queries, stored media."""

__all__ = ["batcher", "encoder", "ingest", "query", "storage"]
