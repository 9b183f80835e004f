"""FLOPs per frame of an ONNX graph, counted from its inferred shapes.

Only the dense products are counted (Conv, ConvTranspose, MatMul, Gemm: 2 FLOPs
per multiply-accumulate); they are what a dense matrix product's FLOP/s can be
compared with. Everything else (bias adds, activations, gates, reductions,
resampling) is listed as not counted, by op type, so the reader sees what the
number leaves out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

COUNTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class FlopCount:
    macs: int = 0
    macs_by_op: Counter = field(default_factory=Counter)
    nodes_by_op: Counter = field(default_factory=Counter)  # counted nodes
    not_counted: Counter = field(default_factory=Counter)  # other op types, by node count
    unknown_shape: Counter = field(default_factory=Counter)  # dense ops whose shapes inference left open

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def describe_not_counted(self, top: int = 6) -> str:
        parts = [f"{op}×{n}" for op, n in self.not_counted.most_common(top)]
        rest = sum(self.not_counted.values()) - sum(n for _, n in self.not_counted.most_common(top))
        if rest:
            parts.append(f"+{rest} more")
        if self.unknown_shape:
            parts.append("shape unknown: " + ", ".join(f"{op}×{n}" for op, n in self.unknown_shape.items()))
        return ", ".join(parts) or "-"


def _fixed_batch(model, batch: int):
    """A copy whose symbolic input dims are ``batch``: bundles have a dynamic batch axis,
    and shape inference cannot multiply a symbol."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") or dim.dim_value <= 0:
                dim.dim_value = batch
    for value in model.graph.output:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.ClearField("dim_param")  # let inference fill it in from the inputs
    return model


def _shapes(model) -> dict[str, list[int] | None]:
    out: dict[str, list[int] | None] = {}
    for init in model.graph.initializer:
        out[init.name] = list(init.dims)
    for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        t = value.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if not _known(out.get(value.name)):
            out[value.name] = dims
    return out


def _known(shape) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


def _node_macs(node, shapes) -> int | None:
    attr = {a.name: a for a in node.attribute}
    get = lambda i: shapes.get(node.input[i]) if len(node.input) > i else None  # noqa: E731
    y = shapes.get(node.output[0])
    if node.op_type == "Conv":
        w = get(1)
        # Each output element takes C/groups × kernel MACs; W is M × C/groups × k...
        return math.prod(y) * math.prod(w[1:]) if _known(w) and _known(y) else None
    if node.op_type == "ConvTranspose":
        x, w = get(0), get(1)
        # Each input element scatters into M/groups × kernel outputs; W is C × M/groups × k...
        return math.prod(x) * math.prod(w[1:]) if _known(x) and _known(w) else None
    if node.op_type == "MatMul":
        a = get(0)
        return math.prod(y) * a[-1] if _known(a) and _known(y) else None
    if node.op_type == "Gemm":
        a = get(0)
        if not (_known(a) and _known(y)):
            return None
        trans_a = attr["transA"].i if "transA" in attr else 0
        return math.prod(y) * (a[0] if trans_a else a[1])
    raise ValueError(node.op_type)


def count_flops(graph, batch: int = 1) -> FlopCount:
    """Count the dense-product FLOPs of one call of ``graph`` (a path or an onnx ModelProto) at ``batch``."""
    import onnx

    model = onnx.load(str(graph)) if isinstance(graph, (str, Path)) else graph
    model = onnx.shape_inference.infer_shapes(_fixed_batch(model, batch), strict_mode=False, data_prop=True)
    shapes = _shapes(model)
    result = FlopCount()
    for node in model.graph.node:
        if node.op_type not in COUNTED:
            result.not_counted[node.op_type] += 1
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            result.unknown_shape[node.op_type] += 1
            continue
        result.macs += macs
        result.macs_by_op[node.op_type] += macs
        result.nodes_by_op[node.op_type] += 1
    return result
