"""One thin router per resource; `app.main.create_app` includes them all."""

__all__ = ["classify", "embed", "health", "items", "jobs", "media", "search"]
