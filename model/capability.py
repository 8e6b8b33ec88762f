"""What the machine's matrix units can do fast: the one probe `precision="auto"` and `vatt doctor` read.

bf16 is correct on any CPU but only fast where the CPU has bf16 matrix instructions (AMX tiles or
AVX-512-BF16); without them oneDNN emulates it, far slower than fp32. So `auto` asks this module,
once at load, and tests inject a `Capability` instead of the machine's.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = ["Capability", "probe_capability", "matmul_gflops", "BF16_FLAGS", "INT8_FLAGS"]

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of native bf16 matrix instructions
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8 dot products (VNNI / AMX)
_SHOWN = ("avx2", "fma", "avx512f", "avx512bw") + BF16_FLAGS + INT8_FLAGS


@dataclass(frozen=True)
class Capability:
    """The facts `auto` decides on: the device, the CPU's relevant flags, torch's own view."""

    device: str = "cpu"  # "cpu" or "cuda[:N]"
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cpu_model: str = ""
    torch_cpu_capability: str = ""  # torch's dispatch level: DEFAULT, AVX2, AVX512, ...
    cuda_bf16: bool = False

    @property
    def bf16_units(self) -> bool:
        """Native bf16 matrix math: AMX or AVX-512-BF16 on the CPU, or a CUDA device that has bf16."""
        if self.device.startswith("cuda"):
            return self.cuda_bf16
        return any(f in self.cpu_flags for f in BF16_FLAGS)

    @property
    def int8_units(self) -> bool:
        """int8 dot-product instructions (VNNI or AMX-INT8)."""
        return any(f in self.cpu_flags for f in INT8_FLAGS)

    def summary(self) -> dict:
        """A JSON-able record for `vatt doctor`, `/readyz` and model cards."""
        d = asdict(self)
        d["cpu_flags"] = sorted(f for f in self.cpu_flags if f in _SHOWN)
        d.update(bf16_units=self.bf16_units, int8_units=self.int8_units)
        return d


def _cpu_info(path: Path = Path("/proc/cpuinfo")) -> tuple[frozenset[str], str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: no flags, so auto never assumes bf16 units it cannot see
        return frozenset(), platform.processor()
    flags: frozenset[str] = frozenset()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return flags, model


def probe_capability(device: str | torch.device = "cpu") -> Capability:
    """This machine's capability for `device` (reads /proc/cpuinfo and asks torch; cheap)."""
    device = str(device)
    flags, model = _cpu_info()
    cuda_bf16 = False
    if device.startswith("cuda") and torch.cuda.is_available():
        cuda_bf16 = bool(torch.cuda.is_bf16_supported())
    return Capability(device=device, cpu_flags=flags, cpu_model=model or os.uname().machine,
                      torch_cpu_capability=str(torch.backends.cpu.get_cpu_capability()), cuda_bf16=cuda_bf16)


@torch.no_grad()
def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 3, device: str = "cpu") -> float:
    """This machine's dense [n, n] @ [n, n] rate in `dtype` right now (GFLOP/s): the ceiling that
    encoder throughput is compared with (benches, `vatt doctor`). Keep n small where bf16 is emulated."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b  # warm-up: oneDNN builds its kernel on the first call
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9
