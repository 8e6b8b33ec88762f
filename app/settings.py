"""Service settings: one pydantic-settings object, read from `VATT_*` environment variables.

Nothing reads the environment at import time; `create_app(settings)` takes an explicit object
(tests, the CLI) or builds one from the environment when given none. `load_settings` is the way in
for the CLI: a bad value is a SettingsError naming the variable (or flag), the value and what is
accepted. `settings_table()` renders README's table of every `VATT_*` setting (a test keeps it in sync).
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "SettingsError", "get_settings", "load_settings", "settings_table"]


class SettingsError(ValueError):
    """A setting's value is refused; the message names the variable (or flag), the value and what is accepted."""


def _list_value(value: Any) -> Any:
    """A list setting from the environment: a JSON list, or a comma-separated list (`a,b`); empty is none."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON list ({exc}); give a JSON list or comma-separated values") from None
    return [part.strip() for part in text.split(",") if part.strip()]


class Settings(BaseSettings):
    """Everything the service can be told; every limit has a default that suits a small demo."""

    model_config = SettingsConfigDict(env_prefix="VATT_", extra="ignore")

    model_dir: Path = Field(description="model directory written by save_pretrained (config, weights, tokenizer)")
    data_dir: Path = Field(description="where the catalogue, uploaded media and thumbnails live")
    store: str = Field("sqlite", pattern=r"^(sqlite|postgres(ql)?://.+)$",
                       description="the catalogue's store: sqlite (a file under the data directory) or a "
                                   "postgresql://user:pass@host:port/db DSN shared by replicas")
    vectors: str = Field("faiss", pattern=r"^(faiss|milvus://.+)$",
                         description="the vector index: faiss (files under the data directory; with a PostgreSQL "
                                     "store a per-replica cache) or milvus://host:port")
    media_dir: Path = Field(None, validate_default=False,  # type: ignore[assignment]  # set from data_dir below
                            description="uploaded media, one file per item; replicas sharing a store must share "
                                        "it (default: <data_dir>/media)")
    job_lease_s: float = Field(60.0, gt=0, description="a running ingest job not heard of for this long (its replica "
                                                      "died) is run again by another worker")
    job_poll_s: float = Field(0.5, gt=0, description="how often idle ingest workers look for queued jobs in the store")
    classifier_dir: Path | None = Field(None, description="fine-tuned classifier directory: POST /classify adds its scores")
    api_key: SecretStr | None = Field(None, description="when set, writes need the header X-API-Key with this value")
    read_api_key: SecretStr | None = Field(None, description="when set, reads (search by text, listing, media) "
                                                              "need X-API-Key with this value or the write key")
    max_concurrent_encodes: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1,
                                        description="file encodes (/embed, /search, /classify with a file) at once; "
                                                    "429 past it")
    max_upload_bytes: int = Field(512 * 2**20, gt=0, description="largest accepted upload (413 above)")
    max_json_bytes: int = Field(2**20, gt=0, description="largest accepted JSON request body (413 above)")
    text_language: str | None = Field(None, description="full-text configuration of transcripts when the catalogue "
                                      "is created (default english; SQLite: english or simple)")
    max_transcript_bytes: int = Field(16 * 2**20, gt=0,
                                      description="largest accepted transcript (.vtt/.srt/JSON cues) upload (413 above)")
    asr_model: Path | None = Field(None, description="CTranslate2 Whisper directory (the `asr` extra): speech "
                                   "becomes the transcript of media that has none; unset: speech is skipped")
    asr_language: str | None = Field(None, description="language code for speech recognition; None: detected")
    max_duration_s: float = Field(3 * 3600.0, gt=0, description="longest accepted media (413 above)")
    allow_server_paths: bool = Field(False, description="let POST /items ingest files already on the server")
    server_path_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="directories server paths must lie under (comma-separated or a JSON list)")
    stride_s: float | None = Field(None, gt=0, description="seconds between window starts; None = back to back")
    batch_size: int = Field(16, ge=1, description="most rows the batcher puts through one forward")
    batch_wait_ms: float = Field(5.0, ge=0, description="how long the batcher waits to fill a batch")
    ingest_chunk: int = Field(8, ge=1, description="windows one ingest submits to the batcher at once")
    prefetch_windows: int = Field(16, ge=1, description="decoded windows queued ahead of inference")
    job_retention_s: float = Field(7 * 86400.0, ge=0, description="how long finished jobs stay listed by GET /jobs")
    ingest_workers: int = Field(1, ge=1, description="ingest jobs run at the same time (one pool for every collection)")
    max_collections: int = Field(100, ge=1, description="most collections one server holds, the default one "
                                                        "included (POST /collections answers 409 past it)")
    max_snapshots: int = Field(20, ge=1, description="most snapshots kept per collection (POST …/snapshots answers "
                                                     "409 past it)")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None = all cores")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="where the model runs: auto (cuda when available), cpu, cuda or cuda:N")
    precision: str = Field("auto", pattern=r"^(auto|fp32|int8|bf16)$",
                           description="auto (resolved once at load: bf16 where the CPU or GPU has bf16 units, "
                                       "else int8 where it has int8 units and holds cosine >= 0.999, else fp32), fp32, int8 (CPU) "
                                       "or bf16")
    keep_tokens: float = Field(1.0, gt=0, le=1, description="fraction of video/audio tokens kept at inference")
    temperature: float = Field(0.07, gt=0, description="softmax temperature for /classify (VATT's tau)")
    max_k: int = Field(100, ge=1, description="largest k a search may ask for")
    moment_floor: float = Field(0.0, ge=-1, le=1, description="search lists no moment scoring below this "
                                                                "cosine as a best moment")
    max_labels: int = Field(1000, ge=1, description="most labels one /classify may name")
    max_texts: int = Field(256, ge=1, description="most texts one /embed may carry")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed by CORS, comma-separated or a JSON list; empty = none")

    @field_validator("server_path_roots", "cors_origins", mode="before")
    @classmethod
    def _comma_or_json(cls, value: Any) -> Any:
        return _list_value(value)

    @model_validator(mode="after")
    def _default_media_dir(self) -> Settings:
        if self.media_dir is None:
            self.media_dir = self.data_dir / "media"
        return self

    @field_validator("server_path_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        return [Path(r).expanduser().resolve() for r in roots]

    def torch_device(self) -> str:
        """The resolved device ("auto" picks cuda when torch sees a GPU)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def inference_precision(self) -> str:
        """The precision to load the model with (`auto` is resolved at load, by model.inference, which
        knows the model and the machine); a combination the hardware cannot run is a ValueError."""
        if self.precision == "int8" and self.torch_device().startswith("cuda"):
            raise ValueError("VATT_PRECISION=int8 runs on the CPU only (quantised kernels); use bf16 or fp32 on CUDA")
        return self.precision

    @property
    def tmp_dir(self) -> Path:
        """Uploads in flight; on the data disk so a finished upload is renamed, not copied."""
        return self.data_dir / "tmp"

    @property
    def catalog_dir(self) -> Path:
        """The index package's directory (SQLite + FAISS files)."""
        return self.data_dir / "catalog"

    @property
    def thumbs_dir(self) -> Path:
        """Cached JPEG thumbnails, one per item."""
        return self.data_dir / "thumbs"


def _accepted(name: str) -> str:
    """What a field accepts, in words: its type and bounds (or pattern)."""
    field = Settings.model_fields[name]
    kind = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
    bounds = []
    for meta in field.metadata:
        for attr, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("pattern", "matching")):
            value = getattr(meta, attr, None)
            if attr == "pattern" and value is not None and re.fullmatch(r"\^\(([\w|]+)\)\$", value):
                bounds.append("one of " + ", ".join(value[2:-2].split("|")))
            elif value is not None:
                bounds.append(f"{word} {value}")
    return kind + (f" {' and '.join(bounds)}" if bounds else "")


def load_settings(flags: dict[str, str] | None = None, **given: Any) -> Settings:
    """Settings from `given` and the environment; a refused value is one SettingsError naming where it came
    from (`--flag` when flags maps the field to the flag the user typed, else `VATT_NAME`), the value
    and what the setting accepts."""
    flags = flags or {}
    try:
        return Settings(**given)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            where = flags.get(name) if name in given and name in flags else f"VATT_{name.upper()}"
            accepted = _accepted(name) if name in Settings.model_fields else "a valid value"
            if err["type"] == "missing":
                parts.append(f"{where} is not set (needed: {Settings.model_fields[name].description})")
            else:
                value = given.get(name, os.environ.get(f"VATT_{name.upper()}", err.get("input")))
                parts.append(f"{where}={value} is refused ({err['msg']}); accepted: {accepted}")
        raise SettingsError("; ".join(parts)) from None


def settings_table() -> str:
    """README's table of every VATT_* setting: variable, default, meaning (generated from Settings)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            value = field.default_factory()
            default = "half the CPUs" if name == "max_concurrent_encodes" else f"`{json.dumps(value)}`"
        elif field.is_required():
            default = "required"
        elif field.default is None:
            default = "unset"
        else:
            default = f"`{field.default}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `VATT_{name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows)


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, built once (only when no explicit settings were given)."""
    return load_settings()
