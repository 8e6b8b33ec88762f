"""Official checkpoint -> model directory, with a model card that says where the weights came from.

`convert_to_directory` is the one call behind `vatt convert`. It checks everything it can before
reading tensors (output path, vocabulary file, vocabulary size against the word table), converts,
loads the result strictly into the model class, and only then writes: `save_pretrained` writes to a
temporary sibling and renames it into place, so no failure leaves a partial directory. The card
names the checkpoint by basename and the sha256 of its `.index` (never an absolute path or a time),
so converting the same files twice gives byte-identical directories.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import VattConfig
from ..hashing import sha256_file
from ..pretrained import CONFIG_FILE, save_pretrained
from ..text import WordTokenizer
from .official import KINDS, Conversion, ConversionError, convert, detect_kind, infer_config
from .tf_checkpoint import CheckpointError, TFCheckpoint, resolve_prefix

__all__ = ["convert_to_directory", "default_name", "model_card", "PRESET_NAMES"]

log = logging.getLogger(__name__)

# released pretraining directories -> our preset names (docs/checkpoints.md)
PRESET_NAMES = {"tx_fac_bbs": "vatt-ms-bbs", "tx_fac_mbs": "vatt-ms-mbs", "tx_fac_lbs": "vatt-ms-lbs",
                "ut_fac_medium": "vatt-ma-medium"}

LICENCE_NOTE = """\
## Licence

The official VATT code (`google-research/google-research`, folder `vatt/`) is published by Google
Research under the Apache License 2.0, as its source file headers state. The checkpoints and
`misc_data.tgz` are linked from that folder's README, which states no separate licence for them;
these weights are those checkpoints' tensors in another layout. The word-embedding table (inside the
pretraining checkpoints and in `misc_data.tgz` as `word2vec.pkl`) and the vocabulary
(`howto100m_en.txt`) were derived for HowTo100M; their provenance and terms are not documented by
the release. Check the terms that apply to you before using or redistributing these files.
"""

CAVEATS = """\
## Caveats

- `d_kv` (the per-head width) is not stored in TF checkpoints; it was given to the converter. The
  official configs use 64; a wrong value still converts but gives wrong outputs.
- Position tables keep their trained size; other clip lengths or resolutions are resampled at run
  time with the official polyharmonic spline (`tfa.image.interpolate_spline`, order 3).
- Text ids must come from the official vocabulary with `<pad>` at id 0: id 0 is masked as padding.
"""


def default_name(prefix: str) -> str:
    """A model name from where the official release keeps the checkpoint.

    `.../pretrain/tx_fac_mbs/ckpt-500000` -> `vatt-ms-mbs`;
    `.../finetune/vit_base/k400_modality_specific_pretrain/ckpt-100000` -> `vit_base-k400_modality_specific_pretrain`.
    """
    parent = Path(prefix).parent
    if parent.name in PRESET_NAMES:
        return PRESET_NAMES[parent.name]
    if parent.parent.name.startswith(("vit_", "wat_")):
        return f"{parent.parent.name}-{parent.name}"
    return parent.name or "converted"


def _encoder(c) -> str:
    return f"{c.num_layers} layers, d_model {c.d_model}, {c.num_heads} heads x d_kv {c.d_kv}, MLP {c.d_ff}"


def _vision(c, what: str) -> str:
    if what == "video":
        tables = f"{c.temporal_buckets}x{c.vertical_buckets}x{c.horizontal_buckets}"
        grid = f"patch {'x'.join(map(str, c.patch_size))}, position tables {tables}"
    else:
        grid = f"patch {c.patch_size} samples, position table {c.temporal_buckets}"
    proj = ", pre-projection" if c.pre_projection else ""
    proj += f", post-projection to {c.d_post_proj}" if c.d_post_proj else ""
    return f"{_encoder(c)}; {grid}{proj}"


def _architecture(conv: Conversion) -> list[str]:
    c: VattConfig = conv.config
    if conv.modality == "video":
        lines = [f"- video backbone (ViT): {_vision(c.video, 'video')}"]
    elif conv.modality == "audio":
        lines = [f"- audio backbone (WaT): {_vision(c.audio, 'audio')}"]
    elif c.arch == "ms":
        t = c.text
        lines = [f"- video backbone (ViT): {_vision(c.video, 'video')}",
                 f"- audio backbone (WaT): {_vision(c.audio, 'audio')}",
                 f"- text backbone (T5 encoder): {_encoder(t)}; word table {t.vocab_size} x {t.d_embedding}, "
                 f"{t.relative_buckets} relative buckets"]
    else:
        u = c.universal
        lines = [f"- shared backbone: {_encoder(u)}; video patch {'x'.join(map(str, u.video_patch_size))}, audio patch "
                 f"{u.audio_patch_size}; position tables video {u.video_temporal_buckets}x{u.video_spatial_buckets}x"
                 f"{u.video_spatial_buckets}, audio {u.audio_temporal_buckets}, text {u.text_temporal_buckets}; word table "
                 f"{u.vocab_size} x {u.d_embedding}; post-projection to {u.d_post_proj}"]
    if conv.modality is None:
        lines.append(f"- heads (FAC): video-audio space {c.heads.d_va}-d, video-text space {c.heads.d_vt}-d")
        clip = (f"{c.input.num_frames} frames of {c.input.image_size}px at {c.input.fps:g} fps, audio "
                f"{c.input.num_samples} samples at {c.input.sample_rate} Hz")
    else:
        act = "softmax (single-label)" if conv.modality == "video" else "sigmoid (multi-label)"
        lines.append(f"- classifier: {conv.num_classes} classes on the pooled features; official output: {act}")
        lines.append(f"- only the `{conv.modality}` section of config.json describes this model")
        clip = (f"{c.input.num_frames} frames of {c.input.image_size}px at {c.input.fps:g} fps" if conv.modality == "video"
                else f"{c.input.num_samples} samples at {c.input.sample_rate} Hz")
    lines.append(f"- clip the position tables fit: {clip}")
    return lines


def model_card(conv: Conversion, index_sha256: str, tokenizer_note: str) -> str:
    """The README.md of a converted directory: source, sizes, what was ignored, licence, caveats."""
    basename = os.path.basename(conv.prefix)
    weights = {k: t for k, t in conv.state.items() if not k.endswith("num_batches_tracked")}  # BN counters: ours
    params = sum(t.numel() for t in weights.values())
    ignored = ", ".join(f"{n} {what}" for what, n in conv.ignored.items() if n) or "nothing"
    return "\n".join([
        f"# VATT model `{conv.config.name}`", "",
        f"Converted from an official TensorFlow VATT checkpoint: {KINDS[conv.kind]}. The tensors are unchanged "
        "except for layout (Dense kernels transposed, channels-last convolution kernels permuted).", "",
        "## Source", "",
        f"- checkpoint: `{basename}` (`{basename}.index` sha256 `{index_sha256}`)",
        f"- converted: {conv.num_variables} model variables into {len(weights)} tensors ({params:,} parameters)",
        f"- ignored (not model weights): {ignored}",
        f"- d_kv used: {conv.d_kv} (not stored in the checkpoint)", "",
        "## Architecture (inferred from the tensor shapes)", "", *_architecture(conv), "",
        "## Tokenizer", "", tokenizer_note, "", LICENCE_NOTE, CAVEATS,
    ])


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse to replace anything but a model directory, and that only when asked."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConversionError(f"output {out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise ConversionError(f"output directory {out} already exists; pass overwrite=True (--overwrite) to replace it")
    if not (out / CONFIG_FILE).is_file():
        raise ConversionError(f"output directory {out} is not a model directory (no {CONFIG_FILE}); refusing to replace it")


def _tokenizer(vocab: str | os.PathLike | None, config: VattConfig, kind: str) -> tuple[WordTokenizer | None, str]:
    if vocab is None:
        if kind.startswith("finetune-"):
            return None, "None: a classifier has no text encoder."
        return None, ("None included. Text features need the official vocabulary (`howto100m_en.txt` from "
                      "`misc_data.tgz`): convert again with `--vocab`.")
    if kind.startswith("finetune-"):
        raise ConversionError(f"a vocabulary was given, but {KINDS[kind]} has no text encoder")
    tok = WordTokenizer.from_file(vocab)
    if tok.vocab_size != config.text_vocab_size:
        raise ConversionError(f"vocabulary {vocab} has {tok.vocab_size} words but the checkpoint's word table has "
                              f"{config.text_vocab_size} rows; use the vocabulary released with the checkpoint "
                              "(howto100m_en.txt from misc_data.tgz)")
    note = (f"`vocab.txt`: `{os.path.basename(vocab)}` ({tok.vocab_size} words, sha256 `{sha256_file(os.fspath(vocab))}`), "
            "with the official word rule (strip punctuation, lowercase, 16 tokens, `<pad>` = 0).")
    return tok, note


def convert_to_directory(prefix: str | os.PathLike, out_dir: str | os.PathLike, *, vocab: str | os.PathLike | None = None,
                         d_kv: int | dict[str, int] = 64, name: str | None = None, overwrite: bool = False) -> Path:
    """Convert an official checkpoint into a model directory at `out_dir`; returns its path.

    Every failure is a `ConversionError` (checkpoint read errors, refusals, a vocabulary that does not
    fit, an unwritable output) and leaves no output directory behind.
    """
    out = Path(out_dir)
    try:
        _check_output(out, overwrite)
        prefix = resolve_prefix(prefix)
        with TFCheckpoint(prefix) as ckpt:  # cheap checks first: the index only, no tensor reads
            kind = detect_kind(ckpt)
            config = infer_config(ckpt, d_kv=d_kv, name=name or default_name(prefix))
        tokenizer, tokenizer_note = _tokenizer(vocab, config, kind)
        conv = convert(prefix, d_kv=d_kv, name=config.name)
        model = conv.load_model()
        index_sha256 = sha256_file(prefix + ".index")
        card = model_card(conv, index_sha256, tokenizer_note)
        metadata = {"source": {"checkpoint": os.path.basename(prefix), "index_sha256": index_sha256,
                               "kind": kind, "d_kv": d_kv, "ignored": conv.ignored}}
        path = save_pretrained(model, out, tokenizer=tokenizer, card=card, metadata=metadata)
    except ConversionError:
        raise
    except (CheckpointError, ValueError, RuntimeError, OSError) as exc:  # RuntimeError: a strict load that fails
        raise ConversionError(str(exc)) from exc
    log.info("converted %s (%s) into %s", os.path.basename(prefix), kind, path)
    return path
