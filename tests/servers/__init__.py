"""Real database and vector-engine servers that the tests start and stop themselves (no Docker)."""
