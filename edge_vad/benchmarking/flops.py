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
    sampled_frames: int = 0  # frames whose run gave the shapes that depend on the data (0: none did)

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
        if self.sampled_frames:
            parts.append(f"data-dependent shapes: mean of {self.sampled_frames} frames")
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


def count_flops(graph, batch: int = 1, frames=None, state=(), skip: int = 0) -> FlopCount:
    """Count the dense-product FLOPs of one call of ``graph`` (a path or an onnx ModelProto) at ``batch``.

    A graph can size its work by what it sees (HF2-VAD runs its networks once per
    object in view), which no shape inference can know. Given ``frames`` (an
    iterable of preprocessed frames, C×H×W), such ops are counted at the shapes a
    run over them gives, as a camera would run it: ``state`` pairs each state
    input with the output that feeds it next frame; the first ``skip`` frames
    only fill the state. The count is then the mean per frame (batch 1).
    """
    import onnx

    original = onnx.load(str(graph)) if isinstance(graph, (str, Path)) else graph
    model = onnx.shape_inference.infer_shapes(_fixed_batch(original, batch), strict_mode=False, data_prop=True)
    shapes = _shapes(model)
    result = FlopCount()
    unknown = []
    for node in model.graph.node:
        if node.op_type not in COUNTED:
            result.not_counted[node.op_type] += 1
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            unknown.append(node)
            continue
        result.macs += macs
        result.macs_by_op[node.op_type] += macs
        result.nodes_by_op[node.op_type] += 1
    if unknown and frames is not None and batch == 1:
        by_op, n = _run_macs(original, unknown, shapes, frames, state, skip)
        if n:
            for op, macs in by_op.items():
                result.macs += round(macs / n)
                result.macs_by_op[op] += round(macs / n)
            result.nodes_by_op.update(node.op_type for node in unknown)
            result.sampled_frames = n
            return result
    result.unknown_shape.update(node.op_type for node in unknown)
    return result


def _run_macs(model, nodes, shapes, frames, state, skip) -> tuple[Counter, int]:
    """MACs of ``nodes`` summed over the frames after ``skip``, at the shapes ONNX Runtime gives them."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inputs = {i.name: i for i in model.graph.input}
    have = set(inputs) | {o.name for o in model.graph.output} | {i.name for i in model.graph.initializer}
    wanted = [name for node in nodes for name in (*node.input[:2], node.output[0]) if name and name not in have]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in dict.fromkeys(wanted))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    # Unoptimised, so every value named in the graph still exists.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    frame_name = model.graph.input[0].name
    carried = {
        name: np.zeros([1, *(d.dim_value for d in inputs[name].type.tensor_type.shape.dim[1:])], np.float32)
        for name, _ in state
    }
    total, n = Counter(), 0
    for i, frame in enumerate(frames):
        feed = {frame_name: np.asarray(frame, np.float32)[None], **carried}
        out = dict(zip(names, session.run(names, feed)))
        for name, output in state:
            carried[name] = out[output]
        if i < skip:
            continue
        seen = {**shapes, **{k: list(v.shape) for k, v in (*feed.items(), *out.items())}}
        for node in nodes:
            total[node.op_type] += _node_macs(node, seen) or 0
        n += 1
    return total, n
