"""FP16 and INT8 (QDQ) ONNX graphs from the FP32 step graph.

INT8 is explicit quantization: QuantizeLinear/DequantizeLinear pairs around
the convolutions, symmetric, per-channel weights, activation ranges from
real normal frames.  TensorRT, OpenVINO and ONNX Runtime all read such a graph
and run the convolutions in INT8.

Only Conv/ConvTranspose are quantized: they hold nearly all the compute,
while the recurrent gate arithmetic (sigmoid/tanh, peephole products, the
cell update), the state pass-through and the error computation stay in float,
where 8 bits would compound over the unrolled time steps.  Whether the layers
that produce the outputs (the last deconvolution that draws the predicted
frame) also stay in float is decided by measurement on the calibration frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZED_OPS = ["Conv", "ConvTranspose"]


def to_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and arithmetic; inputs and outputs stay FP32 so the runtime feeds it unchanged."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def output_layers(model, outputs=("error", "error_map")) -> list[str]:
    """The Conv/ConvTranspose nodes nearest to the given graph outputs (walking back through float ops)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    found, seen, todo = [], set(), list(outputs)
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in QUANTIZED_OPS:
            found.append(node.name)
            continue
        todo.extend(node.input)
    return sorted(found)


class _Reader:
    def __init__(self, samples):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)


def _quantize(src: Path, dst: Path, samples, exclude: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src), str(dst), _Reader(samples),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=QUANTIZED_OPS,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def _deviation(ref_path: Path, path: Path, samples) -> float:
    """Median relative deviation of the paper's error e(t) from the FP32 graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ref = ort.InferenceSession(str(ref_path), opts, providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rel = []
    for s in samples:
        a = float(ref.run(["error"], s)[0][0])
        b = float(q.run(["error"], s)[0][0])
        rel.append(abs(a - b) / max(abs(a), 1e-12))
    return float(np.median(rel))


def to_int8(src: Path, dst: Path, samples: list[dict], keep_outputs: str = "auto", log=print) -> dict:
    """QDQ INT8 graph; ``keep_outputs`` = "auto" (measure), "yes" or "no". Returns what was done."""
    import onnx

    outs = output_layers(onnx.load(str(src)))
    # Measure on a subset disjoint from nothing but cheap: every other sample.
    probe = samples[::2] or samples
    tried = {}
    choices = {"auto": ["no", "yes"], "yes": ["yes"], "no": ["no"]}[keep_outputs]
    for choice in choices:
        path = dst.with_name(f"{dst.stem}.{choice}{dst.suffix}")
        _quantize(src, path, samples, outs if choice == "yes" else [])
        tried[choice] = (path, _deviation(src, path, probe))
    # Keep the output layers in float only when that measurably helps (>10 % less deviation).
    best = "no"
    if "yes" in tried and ("no" not in tried or tried["yes"][1] < 0.9 * tried["no"][1]):
        best = "yes"
    tried[best][0].replace(dst)
    for choice, (path, _) in tried.items():
        if choice != best:
            path.unlink(missing_ok=True)
    report = {
        "format": "QDQ", "activations": "int8 symmetric per-tensor", "weights": "int8 symmetric per-channel",
        "quantized_ops": QUANTIZED_OPS, "calibration": "MinMax", "calibration_samples": len(samples),
        "output_layers": outs, "output_layers_kept_float": best == "yes",
        "median_rel_error_dev": {k: round(v[1], 6) for k, v in tried.items()},
    }
    log(f"int8: output layers {'kept in float' if best == 'yes' else 'quantized'} "
        f"(median e(t) deviation: {', '.join(f'float outputs={k} {v[1]:.2e}' for k, v in tried.items())})")
    return report
