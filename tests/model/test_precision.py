"""bf16 inference agrees with fp32, and `precision="auto"` resolves per machine capability.

Tolerance: bf16 keeps cosine >= 0.999 to fp32 on every head (video va/vt, audio va, text vt; worst
row) on random-init tiny and tiny-ma models and on the bundled demo model. bf16 is exact enough on
any CPU; it is only slow without bf16 units, so these run on tiny models.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model import VATT, Capability, VattConfig, cast_bf16, load_pretrained, probe_capability, save_pretrained
from model.inference import MIN_COSINE, Calibration, calibrate_int8, prepare_for_inference, resolve_precision

DEMO = Path(__file__).resolve().parents[2] / "app" / "demo_model"
NO_UNITS = Capability(cpu_flags=frozenset({"avx2", "fma"}), torch_cpu_capability="AVX2")
VNNI = Capability(cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni"}), torch_cpu_capability="AVX512")
AMX = Capability(cpu_flags=frozenset({"avx512f", "amx_bf16", "amx_int8", "avx512_bf16"}),
                 torch_cpu_capability="AVX512")


def _inputs(cfg: VattConfig, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    c = cfg.input
    return (torch.rand(batch, 3, c.num_frames, c.image_size, c.image_size, generator=g) * 2 - 1,
            torch.randn(batch, c.num_samples, generator=g) * 0.3,
            torch.randint(1, cfg.text_vocab_size, (batch, c.text_len), generator=g))


@torch.no_grad()
def _heads(model: nn.Module, x) -> dict[str, torch.Tensor]:
    v, a, t = model.encode_video(x[0], normalize=True), model.encode_audio(x[1], normalize=True), \
        model.encode_text(x[2], normalize=True)
    return {"video.va": v["va"], "video.vt": v["vt"], "audio.va": a["va"], "text.vt": t["vt"]}


def _cosines(a: dict, b: dict) -> dict[str, float]:
    return {k: F.cosine_similarity(a[k], b[k], dim=-1).min().item() for k in a}


def _models():
    torch.manual_seed(0)
    yield "tiny", VATT(VattConfig.preset("tiny")).eval()
    yield "tiny-ma", VATT(VattConfig.preset("tiny-ma")).eval()
    yield "demo", load_pretrained(DEMO)


def test_bf16_agrees_with_fp32_on_every_head_and_returns_fp32_unit_vectors() -> None:
    for name, model in _models():
        x = _inputs(model.config)
        half = cast_bf16(copy.deepcopy(model))
        got = _heads(half, x)
        cos = _cosines(_heads(model, x), got)
        assert min(cos.values()) >= MIN_COSINE, (name, cos)
        for k, v in got.items():
            assert v.dtype == torch.float32 and torch.allclose(v.norm(dim=-1), torch.ones(len(v)), atol=1e-5), k
        out = half.encode_video(x[0])
        assert out["pooled"].dtype == out["tokens"].dtype == torch.float32
        assert not torch.equal(got["video.va"], _heads(model, x)["video.va"])  # bf16 did run


def test_bf16_casts_the_media_encoders_and_keeps_t5_text_patches_and_heads_fp32(tiny_model) -> None:
    half = cast_bf16(copy.deepcopy(tiny_model))
    assert half.video.tx.blocks[0].attn.q.weight.dtype == torch.bfloat16
    assert half.audio.tx.final_norm.weight.dtype == torch.bfloat16
    assert half.text.tx.blocks[0].attn.q.weight.dtype == torch.float32
    assert half.heads.vid_to_hid.weight.dtype == torch.float32
    stems = [p.dtype for n, p in half.video.named_parameters() if ".tx." not in f".{n}"]
    assert stems and set(stems) == {torch.float32}


def test_load_pretrained_and_from_pretrained_take_bf16(tiny_model, tmp_path: Path) -> None:
    path = save_pretrained(tiny_model, tmp_path / "m")
    model = load_pretrained(path, precision="bf16", keep_tokens=0.5)
    assert model.precision_choice.precision == "bf16" and model.precision_choice.requested == "bf16"
    assert model.video.tx.blocks[0].mlp.wi.weight.dtype == torch.bfloat16 and model.video.keep_tokens == 0.5
    vatt = VATT.from_pretrained(path, precision="bf16")
    assert vatt.audio.tx.blocks[0].attn.o.weight.dtype == torch.bfloat16
    assert VATT.from_pretrained(path).precision_choice.precision == "fp32"  # the loader's default stays fp32
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, int8, bf16"):
        load_pretrained(path, precision="fp16")


def test_auto_is_bf16_where_the_machine_has_bf16_units(tiny_model) -> None:
    for cap in (AMX, Capability(cpu_flags=frozenset({"avx512_bf16"})), Capability(device="cuda", cuda_bf16=True)):
        choice, ready = resolve_precision(tiny_model, "auto", capability=cap)
        assert choice.precision == "bf16" and ready is None, cap
    model = prepare_for_inference(copy.deepcopy(tiny_model), precision="auto", capability=AMX)
    assert model.precision_choice.reason == "CPU bf16 units: amx_bf16, avx512_bf16"
    assert model.video.tx.blocks[0].attn.q.weight.dtype == torch.bfloat16
    choice, _ = resolve_precision(tiny_model, "auto", capability=Capability(device="cuda", cuda_bf16=False))
    assert choice.precision == "fp32"


def test_auto_without_bf16_or_int8_units_is_fp32_without_measuring(tiny_model) -> None:
    def never(model):
        raise AssertionError("no int8 units: nothing to calibrate")

    choice, ready = resolve_precision(tiny_model, "auto", capability=NO_UNITS, calibrate=never)
    assert (choice.precision, ready) == ("fp32", None) and "no bf16 or int8 matrix units (AVX2)" in choice.reason


def test_auto_with_int8_units_measures_int8_against_fp32_on_the_model(tiny_model) -> None:
    cal, quantized = calibrate_int8(tiny_model)
    assert 0.9 < cal.cosine <= 1.0 + 1e-6
    assert isinstance(quantized.video.tx.blocks[0].attn.q, torch.ao.nn.quantized.dynamic.Linear)
    choice, ready = resolve_precision(tiny_model, "auto", capability=VNNI)
    assert choice.precision == ("int8" if cal.cosine >= MIN_COSINE else "fp32"), choice.reason
    assert f"int8 cosine {cal.cosine:.5f}" in choice.reason and (ready is not None) == (choice.precision == "int8")


@pytest.mark.parametrize(("cosine", "want"), [(0.9995, "int8"), (0.9985, "fp32")])
def test_auto_picks_int8_only_when_it_holds_the_cosine(tiny_model, cosine, want) -> None:
    choice, ready = resolve_precision(tiny_model, "auto", capability=VNNI,
                                      calibrate=lambda m: (Calibration(cosine=cosine), "int8 model"))
    assert choice.precision == want and (ready == "int8 model") == (want == "int8"), choice.reason
    model = prepare_for_inference(copy.deepcopy(tiny_model), precision="auto", capability=VNNI)
    assert model.precision_choice.requested == "auto"


def test_a_forced_precision_is_kept_whatever_the_machine(tiny_model) -> None:
    for cap in (AMX, NO_UNITS):
        for asked in ("fp32", "int8", "bf16"):
            assert resolve_precision(tiny_model, asked, capability=cap)[0].precision == asked
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        resolve_precision(tiny_model, "int8", capability=Capability(device="cuda", cuda_bf16=True))


def test_probe_reads_this_machine() -> None:
    cap = probe_capability("cpu")
    flags = Path("/proc/cpuinfo").read_text()
    assert cap.bf16_units == ("amx_bf16" in flags or "avx512_bf16" in flags)
    summary = cap.summary()
    assert summary["device"] == "cpu" and summary["torch_cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
