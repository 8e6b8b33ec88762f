"""Test media helpers: the one copy lives in bench/_media.py (benchmarks use it too, without tests/ on their path)."""

from bench._media import (GRID, AudioFn, FrameFn, index_frame, index_frame_fn, make_audio, make_image,  # noqa: F401
                          make_subtitles, make_video, read_index, tone, with_subtitles)
from bench._media import __all__  # noqa: F401
