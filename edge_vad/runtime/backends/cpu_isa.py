"""What this CPU's instruction set offers the engines' INT8 and bf16 kernels.

Two facts decide precision choices on a CPU, and both vary between machines of one fleet:

* **VNNI** (``avx512_vnni`` or ``avx_vnni`` on x86; ARM's dot-product instructions): without it,
  x86 INT8 kernels multiply u8×s8 pairs into 16-bit sums that saturate with full-range weights, so
  INT8 weights must keep to 7 bits (ONNX Runtime's ``reduce_range``, NNCF's overflow fix).
* **native bf16** (``avx512_bf16``, ``amx_bf16``): OpenVINO's CPU plugin then *defaults* to bf16
  inference, which is why edge-vad always sets the inference precision itself.

Read from ``/proc/cpuinfo`` (Linux) without importing an engine, so the runtime can check a
bundle's choice against the device it runs on.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

#: x86 flags that matter here, in the order they are reported
_X86_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
              "amx_fp16")
#: ARM64 features (``Features`` line): asimddp is the int8 dot product, bf16 and i8mm the newer ones
_ARM_FLAGS = ("asimd", "asimddp", "i8mm", "bf16")


@dataclass(frozen=True)
class CpuIsa:
    arch: str  # "x86_64", "aarch64", ...
    flags: tuple[str, ...]  # the ones from _X86_FLAGS / _ARM_FLAGS this CPU has
    model: str = ""

    @property
    def vnni(self) -> bool:
        """INT8 dot products that accumulate in 32 bits (no 16-bit saturation)."""
        if self.arch in ("x86_64", "AMD64", "i686"):
            return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(self.flags))
        # ARM64's int8 kernels (sdot/udot, or widening multiplies) accumulate in 32 bits.
        return self.arch in ("aarch64", "arm64")

    @property
    def native_bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(self.flags))

    @property
    def int8_weights(self) -> str:
        """The INT8 weight range this CPU's kernels take without saturating."""
        return "8-bit" if self.vnni else "7-bit"

    def describe(self) -> str:
        """e.g. ``x86_64 avx2 fma (no VNNI, no native bf16)``."""
        extras = []
        if not self.vnni:
            extras.append("no VNNI")
        if not self.native_bf16:
            extras.append("no native bf16")
        return f"{self.arch} {' '.join(self.flags) or '-'}" + (f" ({', '.join(extras)})" if extras else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "vnni": self.vnni, "native_bf16": self.native_bf16, "summary": self.describe()}


def parse_cpuinfo(text: str, arch: str) -> CpuIsa:
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            flags |= set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    wanted = _ARM_FLAGS if arch in ("aarch64", "arm64") else _X86_FLAGS
    return CpuIsa(arch, tuple(f for f in wanted if f in flags), model)


@lru_cache(maxsize=1)
def cpu_isa() -> CpuIsa:
    arch = platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""  # not Linux: nothing known, so the safe choices (7-bit weights) apply on x86
    return parse_cpuinfo(text, arch)
