"""Speech to cues for media that carries no transcript: one small interface (`Transcriber`) and its one engine,
faster-whisper on a local CTranslate2 model directory (the `asr` extra).

Nothing is downloaded: the model directory is named by a setting (VATT_ASR_MODEL) and opened with
`local_files_only`; without the setting there is no transcriber and ingestion skips speech. A transcript
uploaded, beside the file or in its subtitle streams always wins (app/services/ingest.py asks this last).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Protocol

from model.captions import Cue

__all__ = ["AsrError", "Transcriber", "WhisperTranscriber", "load_transcriber"]

log = logging.getLogger(__name__)


class AsrError(RuntimeError):
    """The speech recogniser could not be loaded (a missing extra, a directory that is no CTranslate2 model)."""


class Transcriber(Protocol):
    """What ingestion needs of a speech recogniser."""

    def transcribe(self, path: Path, duration: float) -> list[Cue]:
        """The speech in the file at `path` as cues inside [0, `duration`] seconds, in time order."""
        ...


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on the CPU; `language` None lets Whisper detect it (multilingual models)."""

    def __init__(self, model_dir: Path, *, language: str | None = None, threads: int = 1,
                 compute_type: str = "default") -> None:
        try:
            from faster_whisper import WhisperModel  # the `asr` extra, loaded only when a model is configured
        except ImportError as exc:
            raise AsrError("VATT_ASR_MODEL is set but faster-whisper is not installed: pip install 'vatt[asr]'") from exc
        if not (Path(model_dir) / "model.bin").is_file():
            raise AsrError(f"VATT_ASR_MODEL={model_dir} is not a CTranslate2 model directory (no model.bin); "
                           "convert one with ct2-transformers-converter")
        self.language = language
        self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads,
                                  local_files_only=True)

    def transcribe(self, path: Path, duration: float) -> list[Cue]:
        segments, _ = self.model.transcribe(str(path), language=self.language, beam_size=1, vad_filter=False,
                                            condition_on_previous_text=False)
        cues = []
        for s in segments:  # a generator: decoding runs as it is read
            # Whisper's timestamps are tokens it predicts: clamp them to the media, drop what falls outside
            start, end = max(0.0, float(s.start)), min(float(duration), float(s.end))
            text = s.text.strip()
            if text and math.isfinite(start) and math.isfinite(end) and end > start:
                cues.append(Cue(start, end, text))
        return cues


def load_transcriber(model_dir: Path | None, *, language: str | None = None, threads: int = 1) -> Transcriber | None:
    """The configured recogniser, or None (no setting: speech is skipped)."""
    if model_dir is None:
        return None
    log.info("speech recognition: faster-whisper on %s", model_dir)
    return WhisperTranscriber(model_dir, language=language, threads=threads)
