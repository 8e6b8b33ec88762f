"""The "5 captions nearest in time" rule; the transcript readers live in `model.captions`.

VATT pairs every 3.2 s clip with P = 5 captions: the clip's own narration plus 4 temporal
neighbours (spec §4; the official HowTo100M factory that picks them was never released, so the
rule below is ours and documented). Transcripts come from a manifest, inline as
``[{start, end, text}]`` or as a ``.vtt``/``.srt`` file.
"""

from __future__ import annotations

from collections.abc import Sequence

from model.captions import (CaptionError, Cue, cues_from_json, parse_srt, parse_timestamp, parse_transcript,
                            parse_vtt, read_captions)

__all__ = ["CaptionError", "Cue", "cues_from_json", "nearest_captions", "parse_srt", "parse_timestamp", "parse_transcript", "parse_vtt",
           "read_captions"]


def nearest_captions(cues: Sequence[Cue], start: float, end: float, k: int = 5) -> tuple[list[str], list[bool]]:
    """The ``k`` captions nearest in time to the window ``[start, end]``, and which are real.

    Distance is the gap between cue and window (0 when they overlap); ties go to the larger
    overlap, then to the cue whose centre is nearer the window's centre, then to the earlier
    cue. The first caption is thus the window's own narration and the rest its neighbours.
    Fewer than ``k`` cues are padded with ``""`` and a ``False`` mask entry.
    """
    centre = (start + end) / 2

    def key(item: tuple[int, Cue]) -> tuple[float, float, float, int]:
        i, c = item
        gap = max(0.0, c.start - end, start - c.end)
        overlap = max(0.0, min(end, c.end) - max(start, c.start))
        return (gap, -overlap, abs((c.start + c.end) / 2 - centre), i)

    chosen = [c.text for _, c in sorted(enumerate(cues), key=key)[:k]]
    mask = [True] * len(chosen) + [False] * (k - len(chosen))
    return chosen + [""] * (k - len(chosen)), mask
