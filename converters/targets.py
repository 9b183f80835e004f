"""The one table of deployment targets and their options, validated up front.

Every conversion starts by looking its target up here, so a typo or an option
the target does not support fails before any export work is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_vad.errors import EdgeVadError


@dataclass(frozen=True)
class Target:
    name: str
    backend: str  # runtime backend that runs the bundle
    precisions: tuple[str, ...]  # first is the default
    providers: tuple[str, ...] = ()
    description: str = ""


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "cpu",
            backend="onnxruntime",
            precisions=("fp32",),
            providers=("CPUExecutionProvider",),
            description="ONNX Runtime on any CPU (x86-64, ARM64 such as Raspberry Pi 5)",
        ),
    )
}


def get_target(name: str, precision: str | None = None) -> tuple[Target, str]:
    if name not in TARGETS:
        raise EdgeVadError(f"unknown target '{name}'; targets: {', '.join(sorted(TARGETS))}")
    target = TARGETS[name]
    precision = precision or target.precisions[0]
    if precision not in target.precisions:
        raise EdgeVadError(
            f"target '{name}' does not support precision '{precision}'; supported: {', '.join(target.precisions)}"
        )
    return target, precision
