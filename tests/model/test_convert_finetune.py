"""Fine-tuned classifier checkpoints, built with the test writer from the official fixtures.

No released fine-tuned checkpoint is available here, so each test re-keys an official fixture's
backbone under the inferred fine-tuned layout (`P/_base/...`, classifier `P/_ops/cls`) and checks
that the converted `BackboneClassifier` computes the fixture's own backbone output, and logits =
pooled @ W + b. The writer is checked first by round trips through `TFCheckpoint`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import BackboneClassifier, load_pretrained
from model.convert import ConversionError, TFCheckpoint, convert, convert_to_directory
from model.convert import names

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # tests/model holds the test-only checkpoint writer
    sys.path.insert(0, _HERE)

from tf_writer import P, SUFFIX, write_checkpoint  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
TOL = 1e-4
NUM_CLASSES = 7
RNG = np.random.default_rng(0)

# official pretraining prefix of each backbone, and how the MA tensors are named in a ViT/WaT
MS_PREFIX = {"video": f"{P}_base_layer/vid_backbone/_base/", "audio": f"{P}_base_layer/aud_backbone/_base/"}
UT = f"{P}_base_layer/unified_backbone/unified_transformer/"
UT_RENAMES = {  # MA path -> path inside a fine-tuned ViT/WaT (vatt/utils/train/restore.py, read backwards)
    "video": [("raw_to_embeddings/video/", "voxel_to_patch/"), ("pre_proj/video/", "pre_proj/"),
              ("post_proj/video/", "post_proj/"), ("pos_embedding_lookup/video/", "pos_embedding_lookup/"),
              ("vid_agg_embedding", "agg_embedding"), ("tx/", "tx/")],
    "audio": [("raw_to_embeddings/audio/", "wave_to_patch/"), ("pre_proj/audio/", "pre_proj/"),
              ("post_proj/audio/", "post_proj/"), ("pos_embedding_lookup/audio/", "pos_embedding_lookup/"),
              ("aud_agg_embedding", "agg_embedding"), ("tx/", "tx/")],
}


def _model_tensors(prefix: Path) -> dict[str, np.ndarray]:
    with TFCheckpoint(prefix) as ckpt:
        return {k: ckpt.read(k) for k in ckpt.keys() if k.endswith(SUFFIX) and ".OPTIMIZER_SLOT" not in k}


def _finetuned(fixture: str, modality: str) -> tuple[dict[str, np.ndarray], int]:
    """The fixture's backbone re-keyed as a fine-tuned checkpoint (no classifier yet) and its output width."""
    out = {}
    for key, value in _model_tensors(FIXTURES / fixture / "ckpt-1").items():
        if fixture == "tx_fac_tiny" and key.startswith(MS_PREFIX[modality]):
            out[f"{P}_base/{key[len(MS_PREFIX[modality]):]}"] = value
        elif fixture == "ut_fac_tiny" and key.startswith(UT):
            rest = key[len(UT):]
            for theirs, ours in UT_RENAMES[modality]:
                if rest.startswith(theirs):
                    out[f"{P}_base/{ours}{rest[len(theirs):]}"] = value
    post = out.get(f"{P}_base/post_proj/kernel{SUFFIX}")
    width = post.shape[1] if post is not None else out[f"{P}_base/agg_embedding{SUFFIX}"].shape[0]
    # what an SGD-momentum fine-tuning run saves besides the weights
    out[f"{P}_base/agg_embedding/.OPTIMIZER_SLOT/optimizer/momentum{SUFFIX}"] = np.zeros(width, np.float32)
    out[f"optimizer/iter{SUFFIX}"] = np.array(100000, np.int64)
    out[f"save_counter{SUFFIX}"] = np.array(1, np.int64)
    return out, width


def _with_classifier(tensors: dict, width: int, prefix: str = "_ops/cls") -> tuple[dict, np.ndarray, np.ndarray]:
    kernel = (RNG.standard_normal((width, NUM_CLASSES)) * 0.3).astype(np.float32)
    bias = RNG.standard_normal(NUM_CLASSES).astype(np.float32)
    return {**tensors, f"{P}{prefix}/kernel{SUFFIX}": kernel, f"{P}{prefix}/bias{SUFFIX}": bias}, kernel, bias


def _inputs(fixture: str, modality: str) -> tuple[torch.Tensor, np.ndarray]:
    data = dict(np.load(FIXTURES / fixture / "fixture.npz"))
    x = torch.from_numpy(data[f"input/{modality}"])
    x = x.permute(0, 4, 1, 2, 3) if modality == "video" else x[..., 0]
    return x, data[f"output/{modality}/features_pooled"]


# --- the writer -----------------------------------------------------------------------------------


def test_writer_round_trips_every_dtype_and_shard(tmp_path: Path) -> None:
    tensors = {"a/b": RNG.standard_normal((3, 4)).astype(np.float32), "c": np.arange(5, dtype=np.int64),
               "scalar": np.array(2.5, np.float32), "flags": np.array([True, False]), "h": np.ones((2, 2), np.float16),
               "i": np.array([-3, 7], np.int32)}
    prefix = write_checkpoint(tmp_path / "ckpt-1", tensors, num_shards=3)
    with TFCheckpoint(prefix) as ckpt:
        assert ckpt.keys() == sorted(tensors) and ckpt.num_shards == 3
        for key, value in tensors.items():
            got = ckpt.read(key)
            assert got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value), key


@pytest.mark.parametrize("fixture", ["tx_fac_tiny", "ut_fac_tiny"])
def test_writer_reproduces_an_official_checkpoint_tensor_for_tensor(tmp_path: Path, fixture: str) -> None:
    with TFCheckpoint(FIXTURES / fixture / "ckpt-1") as ckpt:
        original = {k: ckpt.read(k) for k in ckpt.keys() if ckpt.tf_dtype(k) != "string"}
        shapes = {k: ckpt.shape(k) for k in original}
    with TFCheckpoint(write_checkpoint(tmp_path / "ckpt-1", original)) as copy:
        assert copy.keys() == sorted(original)
        for key, value in original.items():
            assert copy.shape(key) == shapes[key] and np.array_equal(copy.read(key), value), key


# --- conversion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "modality"), [
    ("tx_fac_tiny", "video"), ("tx_fac_tiny", "audio"),  # from modality-specific pretraining
    ("ut_fac_tiny", "video"), ("ut_fac_tiny", "audio"),  # from VATT-MA: pre_proj and post_proj too
])
def test_finetuned_classifier_reproduces_the_backbone_and_applies_the_classifier(
        tmp_path: Path, fixture: str, modality: str) -> None:
    tensors, width = _finetuned(fixture, modality)
    tensors, kernel, bias = _with_classifier(tensors, width)
    prefix = write_checkpoint(tmp_path / "finetune" / f"{modality}_x" / "ckpt-1", tensors)
    conv = convert(prefix, d_kv=16)
    assert (conv.kind, conv.modality, conv.num_classes) == (f"finetune-{modality}", modality, NUM_CLASSES)
    assert conv.ignored == {"optimizer slots": 1, "optimizer/counter variables": 2, "object graph": 0}
    sub = conv.config.video if modality == "video" else conv.config.audio
    assert sub.pre_projection == (fixture == "ut_fac_tiny") and (sub.d_post_proj is not None) == (fixture == "ut_fac_tiny")
    model = conv.load_model()
    assert isinstance(model, BackboneClassifier)
    x, pooled_ref = _inputs(fixture, modality)
    with torch.no_grad():
        pooled, logits = model.features(x), model(x)
    assert np.abs(pooled.numpy() - pooled_ref).max() <= TOL
    assert np.abs(logits.numpy() - (pooled_ref @ kernel + bias)).max() <= TOL
    probs = model.probabilities(x)
    assert torch.allclose(probs, logits.softmax(-1) if modality == "video" else logits.sigmoid())


def test_finetuned_directory_loads_back_as_a_classifier(tmp_path: Path) -> None:
    tensors, width = _finetuned("tx_fac_tiny", "video")
    tensors, _, _ = _with_classifier(tensors, width)
    prefix = write_checkpoint(tmp_path / "finetune" / "vit_base" / "k400_modality_specific_pretrain" / "ckpt-1", tensors)
    out = convert_to_directory(prefix, tmp_path / "k400", d_kv=16)
    again = convert_to_directory(prefix, tmp_path / "k400-again", d_kv=16)
    for f in out.iterdir():
        assert f.read_bytes() == (again / f.name).read_bytes(), f.name
    model = load_pretrained(out)
    assert isinstance(model, BackboneClassifier) and (model.modality, model.num_classes) == ("video", NUM_CLASSES)
    assert model.config.name == "vit_base-k400_modality_specific_pretrain"
    card = (out / "README.md").read_text()
    assert "fine-tuned video classifier" in card and f"{NUM_CLASSES} classes" in card and "softmax" in card
    x, _ = _inputs("tx_fac_tiny", "video")
    with torch.no_grad():
        assert torch.equal(model(x), convert(prefix, d_kv=16).load_model()(x))
    with pytest.raises(ConversionError, match="has no text encoder"):
        vocab = tmp_path / "v.txt"
        vocab.write_text("<pad>\n<unk>\n")
        convert_to_directory(prefix, tmp_path / "never", d_kv=16, vocab=vocab)
    assert not (tmp_path / "never").exists()


def test_classifier_prefix_is_one_adjustable_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tensors, width = _finetuned("tx_fac_tiny", "audio")
    tensors, _, _ = _with_classifier(tensors, width, prefix="_ops/head")
    prefix = write_checkpoint(tmp_path / "ckpt-1", tensors)
    with pytest.raises(ConversionError, match=r"no classifier at .*_ops/cls/kernel.*_ops/head/kernel.*CLASSIFIER_PREFIX"):
        convert(prefix, d_kv=16)
    monkeypatch.setattr(names, "CLASSIFIER_PREFIX", "_ops/head")
    assert convert(prefix, d_kv=16).num_classes == NUM_CLASSES


def test_finetuned_checkpoint_with_an_unknown_or_missing_variable_is_refused(tmp_path: Path) -> None:
    tensors, width = _finetuned("tx_fac_tiny", "video")
    tensors, _, _ = _with_classifier(tensors, width)
    extra = {**tensors, f"{P}_base/mask_embedding{SUFFIX}": np.zeros(width, np.float32)}
    with pytest.raises(ConversionError, match=r"(?s)fine-tuned video.*no rule maps \(1\): .*_base/mask_embedding"):
        convert(write_checkpoint(tmp_path / "extra" / "ckpt-1", extra), d_kv=16)
    missing = {k: v for k, v in tensors.items() if "_ops/cls/bias" not in k}
    with pytest.raises(ConversionError, match=r"missing from the checkpoint \(1\): cls\.bias"):
        convert(write_checkpoint(tmp_path / "missing" / "ckpt-1", missing), d_kv=16)


# --- BackboneClassifier as a model directory ------------------------------------------------------


def test_classifier_directory_round_trip_and_refusals(tmp_path: Path) -> None:
    import json

    from model import ModelDirectoryError, VattConfig, WordTokenizer, save_pretrained

    config = VattConfig.preset("tiny")
    model = BackboneClassifier(config, "audio", 5).eval()
    assert torch.allclose(model.cls.bias, torch.full((5,), -float(np.log(4))))  # official AudioSet head init
    out = save_pretrained(model, tmp_path / "m")
    doc = json.loads((out / "config.json").read_text())
    assert (doc["task"], doc["modality"], doc["num_classes"]) == ("classification", "audio", 5)
    assert "audio classifier" in (out / "README.md").read_text()
    loaded = load_pretrained(out)
    wave = torch.rand(2, config.input.num_samples) * 2 - 1
    with torch.no_grad():
        assert isinstance(loaded, BackboneClassifier) and torch.equal(loaded(wave), model(wave))
    with pytest.raises(ModelDirectoryError, match="no text encoder"):
        save_pretrained(model, tmp_path / "tok", tokenizer=WordTokenizer(["<pad>", "<unk>"]))
    assert not (tmp_path / "tok").exists()
    for change, match in (({"task": "detection"}, "unknown task 'detection'"),
                          ({"modality": "text"}, "needs modality in"), ({"num_classes": 0}, "positive num_classes")):
        (out / "config.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises(ModelDirectoryError, match=match):
            load_pretrained(out)
    with pytest.raises(ValueError, match="modality must be one of"):
        BackboneClassifier(config, "text", 5)  # type: ignore[arg-type]


def test_d_kv_per_modality(tmp_path: Path) -> None:
    from model.convert import parse_d_kv

    assert parse_d_kv("64") == 64 and parse_d_kv("video=16, audio=16") == {"video": 16, "audio": 16}
    with pytest.raises(ConversionError, match="unknown modality"):
        parse_d_kv("text=8")
    with pytest.raises(ConversionError, match="integer"):
        parse_d_kv("video=x")
    prefix = FIXTURES / "tx_fac_tiny" / "ckpt-1"
    conv = convert(prefix, d_kv={"video": 16, "audio": 16})
    assert (conv.config.video.d_kv, conv.config.audio.d_kv, conv.config.video.num_heads) == (16, 16, 4)
    # audio is 48 -> 32 wide: with d_kv 8 it has 4 heads (the fixture's 2 x 16 is what reproduces it; the shapes fit both)
    assert convert(prefix, d_kv={"video": 16, "audio": 8}).config.audio.num_heads == 4
    with pytest.raises(ConversionError, match="no width for audio"):
        convert(prefix, d_kv={"video": 16})
