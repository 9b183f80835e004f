"""FP16 and INT8 (QDQ) ONNX graphs from the FP32 step graph.

INT8 is explicit quantization: QuantizeLinear/DequantizeLinear pairs around
the convolutions, symmetric, per-channel weights, activation ranges from
real normal frames.  TensorRT, OpenVINO and ONNX Runtime all read such a graph
and run the convolutions in INT8.

Only Conv/ConvTranspose are quantized: they hold nearly all the compute,
while the recurrent gate arithmetic (sigmoid/tanh, peephole products, the
cell update), memory reads (softmax, normalisation), the state pass-through
and the error computation stay in float.  Four groups of convolutions are
candidates for float as well (``float_candidates``):

* ``motion``: convolutions that see only the motion channels (optical flow).
  Flow is unbounded, and the anomalies a camera must catch are mostly motion
  faster than anything in the normal calibration footage, so ranges set on
  that footage clip exactly the signal that matters.  On the validation set
  (frames 0–479 with injected anomalies) flow activations reached 3.5–4.3×
  their calibrated range and STM-AE lost 0.03 offline AUC; in float it lost
  none.  Normal footage cannot show this, so they stay float by rule.
* ``memory_queries``: convolutions whose output reaches a softmax, arg-max,
  min/max or L2 normalisation through float ops only (memory queries,
  attention maps); ``memory_paths``: every convolution such a read depends on.
  A query that moves by one quantization step can pick another memory item:
  in ProtoMem the deviation below was 16 with every convolution quantized,
  2.0 with the query convolution in float and 0.66 with its whole encoder.
* ``outputs``, ``outputs_2``, ``outputs_3``: the convolutions nearest what the
  score reads (``error``/``error_map``, and the state outputs the next step's
  score reads, such as a carried model's queued prediction), then one and two
  convolutions further back. A residual predictor's error is the small change
  it failed to predict, so rounding in its last layers lands in the score
  undiluted.

These are measured, cheapest first: a group is kept in float only if it cuts
the deviation from the FP32 graph (``deviation``) by more than 10 %, and none
is tried once the deviation is below ``GOOD_ENOUGH``. The deviation is
measured on the calibration samples one step at a time, or, for a graph whose
state is computed by convolutions (recurrent state, a queued prediction), on
the calibration clips streamed with the candidate's *own* state (``Probe``):
there rounding accumulates from frame to frame, which single steps fed the
FP32 state cannot show (bisho's carried step: 0.30 on single steps, over 4 σ
of score drift when streamed).

``reduce_range`` stores the weights in 7 bits (±64).  x86 CPUs without VNNI
(AVX2, many AVX-512 parts) multiply u8 activations by s8 weights with
VPMADDUBSW, whose 16-bit pair sums saturate with full-range weights; on this
machine ONNX Runtime then produced an inverted anomaly score (STM-AE stream
AUC 0.85 → 0.37) from a graph whose exact QDQ arithmetic loses 0.004.
ONNX Runtime's own guidance for such CPUs is ``reduce_range=True``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZED_OPS = ["Conv", "ConvTranspose"]
# Ops that read their input as weights over memory items or regions: a small error before them moves which
# item or region wins, so the convolutions producing their inputs are candidates for float.
READ_OPS = {"Softmax", "ArgMax", "ArgMin", "ReduceL2", "LpNormalization", "ReduceMin", "ReduceMax"}
MIN_GAIN = 0.9  # a float group must cut the deviation to below 90 % of what it was
# Below this deviation (see ``deviation``: e(t) moves by less than half its spread over normal frames)
# no more layers are given up to float: on the validation set every model there kept its AUC.
GOOD_ENOUGH = 0.5
MEASURED_GROUPS = ("memory_queries", "memory_paths", "outputs", "outputs_2", "outputs_3")  # in order, cheapest first
OUTPUT_RINGS = 3  # how far back from the score the output groups reach, in convolutions


def to_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and arithmetic; inputs and outputs stay FP32 so the runtime feeds it unchanged."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def nearest_convs(model, tensors) -> list[str]:
    """The Conv/ConvTranspose nodes nearest to the given tensors (walking back through float ops)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    found, seen, todo = set(), set(), list(tensors)
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in QUANTIZED_OPS:
            found.add(node.name)
            continue
        todo.extend(node.input)
    return sorted(found)


def score_sources(model, state: list[dict] | None = None) -> list[str]:
    """The score outputs, and the state outputs whose next-step inputs the score reads."""
    read = _upstream_inputs(model, ["error", "error_map"])
    return ["error", "error_map"] + [s["output"] for s in state or [] if s["input"] in read]


def output_rings(model, tensors, rings: int = OUTPUT_RINGS) -> list[list[str]]:
    """Convolutions nearest to ``tensors``, then those nearest to their inputs, ``rings`` deep."""
    by_name = {n.name: n for n in model.graph.node}
    out, seen, front = [], set(), list(tensors)
    for _ in range(rings):
        ring = [c for c in nearest_convs(model, front) if c not in seen]
        if not ring:
            break
        out.append(ring)
        seen |= set(ring)
        front = [i for c in ring for i in by_name[c].input[:1]]  # the data input, not the weights
    return out


def _upstream_inputs(model, tensors) -> set[str]:
    producer = {o: n for n in model.graph.node for o in n.output}
    graph_inputs = {i.name for i in model.graph.input}
    found, seen, todo = set(), set(), list(tensors)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in graph_inputs:
            found.add(name)
        node = producer.get(name)
        if node is not None:
            todo.extend(node.input)
    return found


def computes_state(model, state: list[dict] | None) -> bool:
    """Does a convolution feed the carried state (recurrent state, a queued prediction), not just a frame buffer?"""
    return bool(state) and bool(upstream_convs(model, [s["output"] for s in state]))


def reader_layers(model) -> list[str]:
    """The convolutions nearest to a memory read, attention or normalisation (see READ_OPS)."""
    return nearest_convs(model, [n.input[0] for n in model.graph.node if n.op_type in READ_OPS])


def upstream_convs(model, tensors) -> list[str]:
    """Every Conv/ConvTranspose the given tensors depend on."""
    producer = {o: n for n in model.graph.node for o in n.output}
    found, seen, todo = set(), set(), list(tensors)
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in QUANTIZED_OPS:
            found.add(node.name)
        todo.extend(node.input)
    return sorted(found)


def reader_paths(model) -> list[str]:
    """All convolutions a memory read, attention or normalisation depends on (the whole query path)."""
    return upstream_convs(model, [n.input[0] for n in model.graph.node if n.op_type in READ_OPS])


def _with_outputs(model, tensors):
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    for t in tensors:
        if t not in have:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    return copy


def motion_layers(model, samples: list[dict], spec) -> list[str]:
    """Convolutions whose input moves with the motion channels of the frames and not with their appearance.

    Found by running the graph on calibration samples with one kind of channel shifted at a time, in
    the frame and in every state tensor that is a window of frames, so no model has to name its layers.
    """
    if spec is None or not spec.motion:
        return []
    from edge_vad.data.spec import extra_channels, window_channels

    per = spec.channels
    appearance = per - extra_channels(spec.motion)
    layouts = window_channels(spec)
    convs = [n for n in model.graph.node if n.op_type in QUANTIZED_OPS]
    tensors = list(dict.fromkeys(n.input[0] for n in convs))
    session = _session(_with_outputs(model, tensors).SerializeToString(), exact=True)

    def shifted(sample, lo, hi):
        out = {}
        for k, v in sample.items():
            v = v.copy()
            # A state may carry only a prefix of each past frame's channels (window_channels).
            step = next((p for p in layouts if v.shape[1] % p == 0), None) if v.ndim == 4 else None
            if step and v.shape[2:] == (spec.height, spec.width):
                idx = [c for c in range(v.shape[1]) if lo <= c % step < hi]
                v[:, idx] += 0.25
            out[k] = v
        return out

    def moved(lo, hi) -> set[str]:
        found = set()
        for s in samples[:4]:
            a = session.run(tensors, s)
            b = session.run(tensors, shifted(s, lo, hi))
            found |= {t for t, x, y in zip(tensors, a, b) if not np.allclose(x, y, rtol=0, atol=1e-6)}
        return found

    only_motion = moved(appearance, per) - moved(0, appearance)
    return sorted(n.name for n in convs if n.input[0] in only_motion)


def float_candidates(model, samples: list[dict], spec=None, state: list[dict] | None = None) -> dict[str, list[str]]:
    groups = {"motion": motion_layers(model, samples, spec), "memory_queries": reader_layers(model),
              "memory_paths": reader_paths(model)}
    rings = output_rings(model, score_sources(model, state))
    for k in range(OUTPUT_RINGS):
        groups["outputs" if k == 0 else f"outputs_{k + 1}"] = sorted(c for ring in rings[: k + 1] for c in ring)
    return groups


class Probe:
    """What a quantized candidate is compared with the FP32 graph on.

    Single calibration samples (every other one, each fed the FP32 graph's state), or, when
    ``clips`` are given, whole clips streamed from zero state with each graph carrying its own
    state, scored after ``warmup`` frames, as a camera would run it.
    """

    def __init__(self, samples: list[dict], clips: list[np.ndarray] | None = None, state: list[dict] | None = None,
                 warmup: int = 0):
        self.samples, self.clips, self.state, self.warmup = samples, clips, state or [], warmup

    @property
    def streamed(self) -> bool:
        return self.clips is not None

    def outputs(self, run) -> tuple[np.ndarray, np.ndarray]:
        """``run(feed) -> {output name: array}`` over the probe → (e(t), error maps)."""
        if not self.streamed:
            runs = [run(s) for s in probe_samples(self.samples)]
            return np.array([float(r["error"][0]) for r in runs]), np.stack([r["error_map"][0] for r in runs])
        errors, maps = [], []
        for clip in self.clips:
            carried = {s["input"]: np.zeros((1, *s["shape"]), np.float32) for s in self.state}
            for i, frame in enumerate(clip):
                out = run({"frame": frame[None].astype(np.float32), **carried})
                carried = {s["input"]: out[s["output"]] for s in self.state}
                if i >= self.warmup:
                    errors.append(float(out["error"][0]))
                    maps.append(out["error_map"][0])
        return np.array(errors), np.stack(maps)

    def describe(self) -> str:
        if self.streamed:
            return f"{sum(len(c) for c in self.clips)} frames streamed with each graph's own state"
        return f"{len(probe_samples(self.samples))} calibration samples, one step each"


class _Reader:
    def __init__(self, samples):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)


def _quantize(src: Path, dst: Path, samples, exclude: list[str], reduce_range: bool, quantize_bias: bool = True) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src), str(dst), _Reader(samples),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=QUANTIZED_OPS,
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method=CalibrationMethod.MinMax,
        # QuantizeBias False: float biases, for TensorRT, whose dequantize layer takes no int32 input.
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": quantize_bias},
    )


def _session(model, exact: bool):
    """ORT CPU session; ``exact`` keeps Q/DQ unfused, i.e. the QDQ arithmetic as written (what TensorRT computes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if exact
                                     else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


def _outputs(session, probe: Probe) -> tuple[np.ndarray, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return probe.outputs(lambda feed: dict(zip(names, session.run(names, feed))))


def deviation(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> float:
    """RMS change of e(t) in units of its spread over normal frames, plus the RMS change of the error map
    relative to its RMS.  e(t) may be an offset score (z-score, normalised PSNR) that crosses zero, so it
    is not compared relative to its own value."""
    (e0, m0), (e1, m1) = ref, got
    de = np.sqrt(np.mean((e1 - e0) ** 2)) / max(float(e0.std()), 1e-12)
    dm = np.sqrt(np.mean((m1 - m0) ** 2)) / max(float(np.sqrt(np.mean(m0 ** 2))), 1e-12)
    return float(de + dm)


def select_float(groups: dict[str, list[str]], trial, log=print, accept=None) -> dict:
    """Which candidate groups to keep in float: ``motion`` by rule, the others (MEASURED_GROUPS, in order)
    when ``trial(exclude) -> (artifact, deviation)`` shows a gain.  Below ``GOOD_ENOUGH`` no more groups are
    tried, unless ``accept(artifact)`` (the converter's parity gate) refuses the best so far: the deviation
    is an average, the gate takes the worst frame.  Returns kept, exclude, measured, artifact, refused."""
    kept = {g: groups[g] for g in ("motion",) if groups.get(g)}
    exclude = sorted({n for names in kept.values() for n in names})
    artifact, best = trial(exclude)
    measured = {"+".join(kept) or "none": round(best, 4)}
    verdicts: list[bool] = []  # accept() of the current best, asked once per best
    asked = None
    for g in MEASURED_GROUPS:
        extra = [n for n in groups.get(g, []) if n not in exclude]
        if not extra:
            continue
        if best <= GOOD_ENOUGH:
            if accept is None:
                continue
            if asked is not artifact:
                asked = artifact
                verdicts.append(bool(accept(artifact)))
            if verdicts[-1]:
                continue
            log(f"int8: the parity gate refuses deviation {best:.3g}; trying {g} in float too")
        candidate, dev = trial(sorted(exclude + extra))
        measured["+".join([*kept, g])] = round(dev, 4)
        if dev < MIN_GAIN * best:
            artifact, best = candidate, dev
            kept[g] = groups[g]
            exclude = sorted(exclude + extra)
    return {"kept": kept, "exclude": exclude, "measured": measured, "artifact": artifact, "deviation": best,
            "refused": not all(verdicts)}


def describe_choice(choice: dict, n_convs: int) -> str:
    kept, measured = choice["kept"], choice["measured"]
    return (f"{n_convs - len(choice['exclude'])}/{n_convs} convolutions quantized, float: "
            f"{', '.join(f'{g} ({len(v)})' for g, v in kept.items()) or 'none'} (deviation from FP32: "
            f"{', '.join(f'{k} {v:.3g}' for k, v in measured.items())})")


def reference_outputs(src: Path, probe: Probe) -> tuple[np.ndarray, np.ndarray]:
    """FP32 e(t) and error maps on the probe, what every trial is compared with."""
    return _outputs(_session(src, exact=True), probe)


def probe_samples(samples):
    return samples[1::2] or samples  # measured on every other calibration sample


def to_int8(src: Path, dst: Path, probe: Probe, spec=None, keep_float: str = "auto",
            reduce_range: bool = False, exact: bool = False, log=print, accept=None,
            quantize_bias: bool = True) -> dict:
    """QDQ INT8 graph, ranges from ``probe.samples``.  ``keep_float``: "auto" (rule + measurement, see the
    module doc) or "none" (every convolution quantized).  ``exact``: measure with unfused QDQ arithmetic
    (targets that are not ONNX Runtime CPU).  ``accept(graph_path)``: the gate a candidate must also pass
    (``select_float``).  Returns what was done, for verify.json."""
    import onnx

    samples = probe.samples
    fp32 = onnx.load(str(src))
    n_convs = sum(n.op_type in QUANTIZED_OPS for n in fp32.graph.node)
    groups = float_candidates(fp32, samples, spec, probe.state) if keep_float == "auto" else {}
    ref = reference_outputs(src, probe)
    tried: list[Path] = []

    def trial(exclude: list[str]) -> tuple[Path, float]:
        path = dst.with_name(f"{dst.stem}.trial{len(tried)}{dst.suffix}")
        tried.append(path)
        _quantize(src, path, samples, exclude, reduce_range, quantize_bias)
        return path, deviation(ref, _outputs(_session(path, exact), probe))

    try:
        choice = select_float(groups, trial, log, accept)
        choice["artifact"].replace(dst)
    finally:
        for path in tried:
            path.unlink(missing_ok=True)
    report = {
        "format": "QDQ", "activations": "int8 symmetric per-tensor",
        "weights": "int8 symmetric per-channel" + (", 7-bit range (reduce_range)" if reduce_range else ""),
        "quantized_ops": QUANTIZED_OPS, "calibration": "MinMax", "calibration_samples": len(samples),
        "float_candidates": groups, "kept_float": choice["kept"],
        "convolutions": {"total": n_convs, "float": len(choice["exclude"]), "int8": n_convs - len(choice["exclude"])},
        "deviation": choice["measured"], "escalated": choice["refused"],
        "deviation_measured_on": ("onnxruntime, QDQ unfused" if exact else "onnxruntime CPU") + ", " + probe.describe(),
    }
    log("int8: " + describe_choice(choice, n_convs))
    return report
