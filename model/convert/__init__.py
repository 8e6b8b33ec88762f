"""Official VATT TensorFlow checkpoints -> our models and model directories, without TensorFlow.

Three layers, each testable alone: `tf_checkpoint` reads TF2 tensor bundles (nothing of VATT),
`names` + `transforms` say where each tensor goes and how it is reshaped, and `official` infers the
config and converts with full accounting; `directory` writes the model directory and its card.
"""

from .directory import convert_to_directory
from .official import Conversion, ConversionError, convert, convert_checkpoint, infer_config, parse_d_kv
from .tf_checkpoint import CheckpointError, TFCheckpoint

__all__ = [
    "parse_d_kv",
    "TFCheckpoint",
    "CheckpointError",
    "ConversionError",
    "convert_checkpoint",
    "convert_to_directory",
    "infer_config",
    "convert",
    "Conversion",
]
