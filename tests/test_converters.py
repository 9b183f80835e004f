"""Every registered model × every target of converters/targets.py, converted for real.

Generated from both registries: a new model or target is covered without new
test code.  Targets this machine can run (ONNX Runtime CPU, OpenVINO CPU) are
converted at every precision and verified with their own backend; TensorRT
targets are converted to their full bundle (ONNX + build plan, engine built
on the device) and their engine tests run only where a GPU and TensorRT exist.
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from converters.targets import TARGETS
from edge_vad.errors import EdgeVadError, MissingDependency
from edge_vad.models import get_model, list_models
from helpers import REPO, need_vtest, write_clip

pytestmark = pytest.mark.slow
MODELS = list_models()
QUIET = dict(log=lambda *a: None)


REFERENCE = "stconvlstm" if "stconvlstm" in MODELS else MODELS[0]

# Models whose INT8 bundle is known to fail the parity check on the tiny test variant
# (strict xfail: the day one passes, it must leave the set).  Empty since hf2vad and
# protomem keep their motion path / memory queries in float (converters/quantize.py).
INT8_PARITY_OPEN: set[str] = set()


def _cases():
    """Every model × every target runnable here (default precision and INT8); the reference model
    also on the targets that only build here (TensorRT: ONNX + plan, engine on the device)."""
    for model in MODELS:
        for name, t in TARGETS.items():
            ok, why = t.runnable_here()
            if ok:
                for prec in dict.fromkeys([t.precisions[0], "int8", "bf16"]):
                    if prec in t.precisions:
                        marks = ()
                        if prec == "int8" and model in INT8_PARITY_OPEN:
                            marks = pytest.mark.xfail(strict=True, raises=EdgeVadError,
                                                      reason="INT8 parity fails for this model (open, issue 4)")
                        ok_here, why_not = t.runnable_here(prec)
                        if not ok_here:  # bf16 on a CPU without native bf16
                            marks = pytest.mark.skip(reason=why_not)
                        if not get_model(model).supports(prec):
                            continue
                        yield pytest.param(model, name, prec, id=f"{model}-{name}-{prec}", marks=marks)
            elif model == REFERENCE and t.backend != "openvino":
                yield pytest.param(model, name, t.precisions[0], id=f"{model}-{name}-{t.precisions[0]}")
            elif model == REFERENCE:
                yield pytest.param(model, name, t.precisions[0], id=f"{model}-{name}-{t.precisions[0]}",
                                   marks=pytest.mark.skip(reason=why))


_CKPTS: dict = {}


def _train(name, tmp_path_factory):
    from edge_vad.training.trainer import train

    if name not in _CKPTS:
        out = tmp_path_factory.mktemp(f"ckpt-{name}")
        train(name, "edge", need_vtest(), out, frames="0:240", epochs=1, overrides=get_model(name).test_overrides, **QUIET)
        _CKPTS[name] = (name, out)
    return _CKPTS[name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The reference model, tiny, for the tests of one conversion feature each."""
    return _train(REFERENCE, tmp_path_factory)


@pytest.fixture(scope="module")
def val_clip(tmp_path_factory):
    """A short labelled clip with both classes, cut from the shipped demo clip."""
    from edge_vad.data.frames import read_frames

    demo = REPO / "edge_vad/assets/demo"
    y = np.load(demo / "vtest_anomalies_demo.labels.npy")
    first = int(np.argmax(y > 0))
    a, b = max(0, first - 50), first + 30
    d = tmp_path_factory.mktemp("val")
    write_clip(d / "val.avi", list(read_frames(demo / "vtest_anomalies_demo.avi", a, b)))
    np.save(d / "val.npy", y[a:b])
    assert 0 < y[a:b].sum() < b - a
    return d / "val.avi", d / "val.npy"


_BUNDLES: dict = {}


def _convert(trained, target, precision, tmp_path_factory, **kw):
    from converters import convert

    key = (trained[0], target, precision)
    if key not in _BUNDLES:
        out = tmp_path_factory.mktemp(f"b-{target}-{precision}") / "bundle"
        _BUNDLES[key] = (out, convert(trained[1], target, out, precision=precision, threads=1, **QUIET, **kw))
    return _BUNDLES[key]


@pytest.mark.parametrize("model,target,precision", list(_cases()))
def test_convert_every_model_to_every_target(model, target, precision, tmp_path_factory):
    from edge_vad.runtime.bundle.loader import load_bundle

    out, m = _convert(_train(model, tmp_path_factory), target, precision, tmp_path_factory)
    t = TARGETS[target]
    b = load_bundle(out)
    assert b.manifest.target.name == target and b.manifest.target.precision == precision
    assert b.manifest.graph.precision == precision
    # The float arithmetic's precision is set and recorded, never an engine default (OpenVINO's CPU
    # default is bf16 on AVX-512 BF16 machines); so is the CPU the bundle was made on.
    if t.backend in ("onnxruntime", "openvino"):
        assert b.manifest.target.inference_precision == ("bf16" if precision == "bf16" else "f16" if
                                                         (precision == "fp16" and t.backend == "onnxruntime") else "f32")
    assert b.manifest.target.verified_cpu["summary"]
    assert (b.manifest.graph.int8_weights is not None) == (precision == "int8")
    verify = json.loads((out / "verify.json").read_text())
    assert verify["parity"]["passed"] and verify["parity"]["score_correlation"] > 0.9
    if t.graph_format == "openvino-ir":
        assert {"model.xml", "model.bin"} <= set(b.manifest.files) and b.manifest.graph.format == "openvino-ir"
    else:
        import onnx

        g = onnx.load(str(out / "model.onnx"))
        assert [i.name for i in g.graph.input][0] == "frame"
        assert g.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # cameras share one call
    if t.builds_on_device:
        plan = json.loads((out / "engine_plan.json").read_text())
        assert plan["precision"] == precision and plan["onnx"] == "model.onnx"
        assert "engine_plan.json" in b.manifest.files and b.manifest.target.build_plan == "engine_plan.json"
    if t.runnable_here()[0] and not t.builds_on_device:
        assert verify["verified_on"] == target  # verified with the target's own backend
        if t.backend == "openvino":  # what the engine really compiled, read back from the compiled model
            assert verify["inference_precision"] == b.manifest.target.inference_precision
        _check_op_profile(b)


@pytest.mark.parametrize("model,target", [pytest.param(m, n, id=f"{m}-{n}") for m in MODELS
                                          for n, t in TARGETS.items() if t.runnable_here()[0]])
def test_batched_cameras_score_like_separate_ones(model, target, tmp_path_factory):
    """Cameras sharing one backend call get what their own calls give (for hf2vad, cameras with
    different object counts in one call)."""
    from daemon_helpers import vtest_frames
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream, step_batch

    out, _ = _convert(_train(model, tmp_path_factory), target, TARGETS[target].precisions[0], tmp_path_factory)
    bundle = load_bundle(out)
    a, b = CameraStream(bundle, threads=1), CameraStream(bundle, threads=1)
    shared = CameraStream(bundle, threads=1)
    other = CameraStream(bundle, backend=shared.backend)
    assert shared.batchable
    frames = vtest_frames(100, 100 + max(24, bundle.manifest.warmup_frames + 12))
    scored = 0
    for i, f in enumerate(frames):
        g = frames[-1 - i]
        ra, rb = a.step(f), b.step(g)
        sa, sb = step_batch([shared, other], [f, g])
        for r, s in ((ra, sa), (rb, sb)):
            assert r.index == s.index
            if r.error_map is not None:
                scored += 1
                np.testing.assert_allclose(r.error, s.error, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(r.score, s.score, rtol=1e-3, atol=1e-3)
    assert scored == 2 * (len(frames) - bundle.manifest.warmup_frames) > 0  # both cameras, every frame after warm-up


def test_openvino_compiles_fixed_shapes_per_batch_size_and_matches_the_dynamic_model(trained, tmp_path_factory):
    """The OpenVINO backend runs each batch size on its own fixed-shape model (OpenVINO's dynamic
    path re-plans every call); the outputs are the dynamic model's."""
    if not TARGETS["openvino-cpu"].runnable_here()[0]:
        pytest.skip(TARGETS["openvino-cpu"].runnable_here()[1])
    import openvino as ov

    from edge_vad.runtime.backends.openvino import OpenVinoBackend, inference_config
    from edge_vad.runtime.bundle.loader import load_bundle

    out, _ = _convert(trained, "openvino-cpu", "fp32", tmp_path_factory)
    bundle = load_bundle(out)
    fixed = OpenVinoBackend(bundle.graph_path, threads=1, cache_dir=tmp_path_factory.mktemp("ov-cache"))
    assert fixed.effective_precision == "f32"
    dynamic = OpenVinoBackend(compiled=ov.Core().compile_model(str(bundle.graph_path), "CPU",
                                                               inference_config("CPU", "f32", threads=1)))
    assert sorted(fixed._fixed) == [1]  # one camera is ready before the first frame
    rng = np.random.default_rng(0)
    for n in (1, 3, 1):
        feeds = {i.name: rng.random((n, *i.shape[1:]), dtype=np.float32) for i in bundle.manifest.graph.inputs}
        a, b = fixed.run(feeds), dynamic.run(feeds)
        assert set(a) == set(b)
        for k in a:
            assert a[k].shape[0] == n
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert sorted(fixed._fixed) == [1, 3]
    fixed.prepare(range(1, 5))
    assert sorted(fixed._fixed) == [1, 2, 3, 4]
    assert bundle.manifest.graph.fixed_shapes is True  # what its parity check ran
    # INT8: OpenVINO's fixed-shape INT8 kernels are another numerical path. The converter verifies
    # the fixed model first and falls back to the dynamic one, and the bundle says which passed;
    # a bundle that does not say runs INT8 dynamic.
    q_bundle = load_bundle(_convert(trained, "openvino-cpu", "int8", tmp_path_factory)[0])
    verify = json.loads((q_bundle.root / "verify.json").read_text())
    assert q_bundle.manifest.graph.fixed_shapes in (True, False)
    assert verify["openvino_fixed_shapes"] == q_bundle.manifest.graph.fixed_shapes
    cache = tmp_path_factory.mktemp("ov-cache")
    for said, fixed_sizes in ((None, []), (False, []), (True, [1])):
        q = OpenVinoBackend(q_bundle.graph_path, threads=1, cache_dir=cache, fixed_shapes=said)
        q.run(feeds)
        assert sorted(q._fixed) == fixed_sizes and (q._dynamic is not None) == (not fixed_sizes)


def test_daemon_compiles_the_batch_sizes_of_cameras_sharing_an_openvino_bundle(trained, tmp_path_factory, mosquitto,
                                                                              tmp_path):
    """Three cameras on one OpenVINO bundle: batch sizes 1-3 are compiled at start-up, not on the
    scoring thread at the first round that meets them."""
    if not TARGETS["openvino-cpu"].runnable_here()[0]:
        pytest.skip(TARGETS["openvino-cpu"].runnable_here()[1])
    from daemon_helpers import FrameReader, make_config
    from edge_vad.runtime.daemon.scheduler import Daemon

    out, _ = _convert(trained, "openvino-cpu", "fp32", tmp_path_factory)
    cams = [{"name": n, "source": "in-process", "bundle": str(out)} for n in ("a", "b", "c")]
    daemon = Daemon(make_config(tmp_path, mosquitto, cams, threads=1), sources={n: FrameReader([]) for n in "abc"})
    backends = {id(c.stream.backend): c.stream.backend for c in daemon.cameras}
    assert len(backends) == 1
    assert sorted(next(iter(backends.values()))._fixed) == [1, 2, 3]


def _check_op_profile(bundle):
    """The engine's profiler sees this bundle's dense kernels, under names the speed table counts as dense."""
    from edge_vad.data.frames import read_frames
    from edge_vad.benchmarking.op_profile import DENSE_OPS, profile_ops
    from edge_vad.runtime.stream import CameraStream

    stream = CameraStream(bundle, threads=1)
    feeds, run = [], stream.backend.run
    stream.backend.run = lambda inputs: (feeds.append({k: v.copy() for k, v in inputs.items()}), run(inputs))[1]
    for frame in read_frames(need_vtest(), 0, stream.warmup + 3):
        stream.step(frame)
    prof = profile_ops(bundle, feeds[-3:], threads=1)
    assert prof.backend == bundle.manifest.target.backend and prof.runs == 3
    dense = {op for op in prof.ms if op in DENSE_OPS[prof.backend]}
    assert dense, sorted(prof.ms)  # every model convolves; a renamed kernel would hide its time
    assert 0 < prof.dense_ms < prof.total_ms
    assert all(prof.calls[op] >= 1 for op in dense)


@pytest.mark.parametrize("target", [n for n, t in TARGETS.items() if t.runnable_here()[0] and "int8" in t.precisions])
def test_int8_bundle_runs_in_the_runtime_and_tracks_fp32(trained, target, tmp_path_factory):
    """INT8 streamed through CameraStream follows the FP32 bundle's score frame by frame."""
    from edge_vad.evaluation.scorers import score_bundle

    fp32, _ = _convert(trained, target, "fp32", tmp_path_factory)
    int8, _ = _convert(trained, target, "int8", tmp_path_factory)
    a = score_bundle(fp32, need_vtest(), (500, 540))
    b = score_bundle(int8, need_vtest(), (500, 540))
    w = a.warmup
    assert np.corrcoef(a.stream[w:], b.stream[w:])[0, 1] > 0.9
    assert np.median(np.abs(a.errors[w:] - b.errors[w:]) / a.errors[w:]) < 0.05


def test_qdq_graph_is_symmetric_per_channel(trained, tmp_path_factory):
    import onnx
    from onnx import numpy_helper

    out, _ = _convert(trained, "cpu", "int8", tmp_path_factory)
    g = onnx.load(str(out / "model.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
    weights = [n for n in dq if n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert weights, "convolution weights are stored as int8"
    def axis(n):
        return next((a.i for a in n.attribute if a.name == "axis"), 1)

    kernels = [n for n in weights if inits[n.input[0]].ndim == 4]
    # One scale per output channel (axis 0 for Conv, 1 for ConvTranspose).
    assert all(inits[n.input[1]].size == inits[n.input[0]].shape[axis(n)] for n in kernels), "per-channel scales"
    assert any(inits[n.input[1]].size > 1 for n in kernels)
    # The cpu target's weight range is chosen for the converting CPU: 7 bits where x86 int8 kernels
    # without VNNI would saturate on full-range weights, 8 bits with VNNI; the manifest says which.
    from edge_vad.runtime.backends.cpu_isa import cpu_isa
    from edge_vad.runtime.bundle.loader import load_bundle

    weights = load_bundle(out).manifest.graph.int8_weights
    assert weights == cpu_isa().int8_weights
    largest = max(int(np.abs(inits[n.input[0]]).max()) for n in kernels)
    assert largest <= 64 if weights == "7-bit" else largest > 64
    zps = [inits[n.input[2]] for n in dq if len(n.input) > 2 and n.input[2] in inits]
    assert zps and all(np.all(z == 0) for z in zps), "symmetric: zero points are 0"
    quantized = {n.op_type for n in g.node if any(i.endswith("DequantizeLinear") or "_DequantizeLinear" in i for i in n.input)}
    assert "Sigmoid" not in quantized and "Tanh" not in quantized  # recurrent gates stay float
    report = json.loads((out / "verify.json").read_text())["quantization"]
    assert report["format"] == "QDQ" and report["calibration_samples"] >= 16


def _carried_toy():
    """frame → Conv a → Conv b → Conv c → ``pred_out`` (the next step's ``pred``); the score reads ``pred``."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "w")
    nodes = [helper.make_node("Conv", [x, "w"], [y], name=n) for n, x, y in
             [("a", "frame", "ya"), ("b", "ya", "yb"), ("c", "yb", "pred_out")]]
    nodes += [helper.make_node("Sub", ["frame", "pred"], ["d"], name="sub"),
              helper.make_node("Abs", ["d"], ["error_map"], name="abs"),
              helper.make_node("ReduceMean", ["error_map"], ["error"], keepdims=0, name="mean")]
    t = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, 2, 2])  # noqa: E731
    graph = helper.make_graph(nodes, "toy", [t("frame"), t("pred")],
                              [helper.make_tensor_value_info("error", TensorProto.FLOAT, [1]), t("error_map"), t("pred_out")],
                              [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_int8_output_groups_reach_back_from_what_the_next_score_reads():
    from converters.quantize import computes_state, output_rings, score_sources

    toy = _carried_toy()
    state = [{"input": "pred", "output": "pred_out", "shape": [1, 2, 2]}]
    # The score reads the queued prediction, so the convolutions making it are the "outputs" groups.
    assert score_sources(toy, state) == ["error", "error_map", "pred_out"]
    assert output_rings(toy, score_sources(toy, state)) == [["c"], ["b"], ["a"]]
    assert output_rings(toy, ["error", "error_map"]) == []
    assert computes_state(toy, state) and not computes_state(toy, [])


def test_int8_float_groups_stop_at_good_enough_unless_the_parity_gate_refuses():
    from converters.quantize import GOOD_ENOUGH, select_float

    groups = {"motion": [], "memory_queries": ["q"], "memory_paths": ["q", "p"], "outputs": ["o"],
              "outputs_2": ["o", "o2"], "outputs_3": ["o", "o2", "o3"]}
    devs = {(): 3.0, ("q",): 1.0, ("p", "q"): 0.45, ("o", "p", "q"): 0.3, ("o", "o2", "p", "q"): 0.29,
            ("o", "o2", "o3", "p", "q"): 0.1}

    def trial(exclude):
        return tuple(exclude), devs[tuple(exclude)]

    default = select_float(groups, trial, log=lambda *a: None)
    assert default["deviation"] == 0.45 <= GOOD_ENOUGH and default["exclude"] == ["p", "q"]
    every = select_float(groups, trial, log=lambda *a: None, accept=lambda artifact: False)  # the gate refuses all
    # outputs_2 gains under 10 % and is not kept; outputs_3 is measured on top of what was kept.
    assert list(every["kept"]) == ["memory_queries", "memory_paths", "outputs", "outputs_3"]
    assert every["deviation"] == 0.1


def test_int8_probe_streams_a_computed_state_with_the_candidates_own_outputs():
    from converters.quantize import Probe

    state = [{"input": "s", "output": "s_out", "shape": [1]}]
    clip = np.zeros((5, 1, 1, 1), np.float32)

    def run(feed):  # a graph that counts its own steps in its state
        s = feed["s"] + 1
        return {"error": s.reshape(1), "error_map": np.zeros((1, 1, 1, 1)), "s_out": s}

    errors, maps = Probe([], [clip, clip], state, warmup=2).outputs(run)
    # Each clip starts from zero state and only the graph's own output carries it; warm-up frames are not scored.
    assert errors.tolist() == [3, 4, 5, 3, 4, 5] and len(maps) == 6
    samples = [{"frame": clip[:1], "s": np.full((1, 1), 7.0, np.float32)}] * 4
    assert Probe(samples).outputs(run)[0].tolist() == [8, 8]  # one step each, every other sample


@pytest.mark.parametrize("model", [m for m in MODELS if get_model(m).supports("int8")])
def test_int8_keeps_motion_only_convolutions_in_float(model, tmp_path_factory):
    """Flow is unbounded and anomalies move faster than the calibration footage: the convolutions that
    see only motion channels are found in the graph and left unquantized."""
    import onnx

    out, m = _convert(_train(model, tmp_path_factory), "cpu", "int8", tmp_path_factory)
    q = json.loads((out / "verify.json").read_text())["quantization"]
    motion = q["kept_float"].get("motion", [])
    if m.input.motion is None:
        assert not q["float_candidates"]["motion"] and not motion
        return
    assert motion and set(motion) == set(q["float_candidates"]["motion"])
    g = onnx.load(str(out / "model.onnx")).graph
    producers = {o: n.op_type for n in g.node for o in n.output}
    convs = {n.name: n for n in g.node if n.op_type in ("Conv", "ConvTranspose")}
    for name in motion:
        assert producers.get(convs[name].input[0]) != "DequantizeLinear", f"{name} reads a quantized tensor"
    quantized = [n for n in convs.values() if producers.get(n.input[0]) == "DequantizeLinear"]
    assert len(quantized) == q["convolutions"]["int8"] > 0


def test_openvino_int8_tunes_on_its_own_footage_not_the_gate_video(trained, val_clip, tmp_path):
    """NNCF's accuracy control runs on --tune-video; --val-video alone only gates (plain PTQ)."""
    from converters import convert

    video, labels = val_clip
    convert(trained[1], "openvino-cpu", tmp_path / "gate", precision="int8", val_video=video, val_labels=labels,
            accept_accuracy_drop=True, threads=1, **QUIET)
    q = json.loads((tmp_path / "gate" / "verify.json").read_text())["quantization"]
    assert q["mode"] == "nncf-ptq" and "accuracy_control_video" not in q
    lines = []
    convert(trained[1], "openvino-cpu", tmp_path / "tuned", precision="int8", tune_video=video, tune_labels=labels,
            threads=1, log=lines.append)
    q = json.loads((tmp_path / "tuned" / "verify.json").read_text())["quantization"]
    assert q["mode"] == "nncf-accuracy-control" and q["accuracy_control_video"] == str(video)
    assert isinstance(q["accuracy_control_reverted"], list)
    assert 0 < q["convolutions"]["int8"] <= q["convolutions"]["total"]
    assert any("accuracy-controlled" in line for line in lines)


def test_auc_gate_fails_over_tolerance_and_can_be_overridden(trained, val_clip, tmp_path):
    from converters import convert

    video, labels = val_clip
    # A negative tolerance cannot be met: the gate must refuse with the numbers.
    with pytest.raises(EdgeVadError, match=r"(?s)loses more than -1.0 AUC.*AUC FAIL.*stream") as exc:
        convert(trained[1], "cpu", tmp_path / "refused", precision="int8", val_video=video, val_labels=labels,
                auc_tolerance=-1.0, threads=1, **QUIET)
    assert not (tmp_path / "refused").exists()
    lines = []
    m = convert(trained[1], "cpu", tmp_path / "kept", precision="int8", val_video=video, val_labels=labels,
                auc_tolerance=-1.0, accept_accuracy_drop=True, threads=1, log=lines.append)
    verify = json.loads((tmp_path / "kept" / "verify.json").read_text())
    auc = verify["auc"]
    assert auc["accepted_by_user"] and not auc["passed"]
    assert set(auc["pytorch"]) == {"auc_stream", "auc_offline"} and 0 <= auc["converted"]["auc_stream"] <= 1
    assert auc["drop"]["auc_stream"] == pytest.approx(auc["pytorch"]["auc_stream"] - auc["converted"]["auc_stream"])
    assert any(line.startswith("AUC ACCEPTED") for line in lines), "the CLI prints the gate's numbers"
    assert m.verify["auc_passed"] is False


def test_fp32_auc_equals_pytorch(trained, val_clip, tmp_path):
    from converters import convert

    video, labels = val_clip
    convert(trained[1], "openvino-cpu", tmp_path / "b", precision="fp32", val_video=video, val_labels=labels, threads=1, **QUIET)
    auc = json.loads((tmp_path / "b" / "verify.json").read_text())["auc"]
    assert auc["passed"] and abs(auc["drop"]["auc_stream"]) < 1e-3


def test_calibration_warns_on_too_few_frames(tmp_path):
    from converters.calib_data import load_calib_frames
    from edge_vad.data.frames import read_frames
    from edge_vad.data.spec import InputSpec

    clip = write_clip(tmp_path / "few.avi", list(read_frames(need_vtest(), 0, 10)))
    with pytest.warns(UserWarning, match="only 10 calibration frames"):
        frames = load_calib_frames(clip, InputSpec("gray", 32, 32))
    assert frames.shape == (10, 1, 32, 32)


def test_bad_target_or_precision_fails_up_front(trained, tmp_path):
    from converters import convert

    with pytest.raises(EdgeVadError, match="unknown target 'jetsn'"):
        convert(trained[1], "jetsn", tmp_path / "x", **QUIET)
    with pytest.raises(EdgeVadError, match="does not support precision 'fp32'"):
        convert(trained[1], "openvino-npu", tmp_path / "x", precision="fp32", **QUIET)
    with pytest.raises(EdgeVadError, match="--val-video and --val-labels go together"):
        convert(trained[1], "cpu", tmp_path / "x", val_video=tmp_path, **QUIET)


def test_old_schema1_manifest_still_loads(trained, tmp_path_factory, tmp_path):
    """Bundles written before target.device / build_plan / graph.format existed keep loading."""
    import shutil

    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.bundle.manifest import MANIFEST

    out, _ = _convert(trained, "cpu", "fp32", tmp_path_factory)
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    raw = json.loads((copy / MANIFEST).read_text())
    for key in ("device", "build_plan"):
        raw["target"].pop(key)
    raw["graph"].pop("format")
    (copy / MANIFEST).write_text(json.dumps(raw))
    b = load_bundle(copy)
    assert b.manifest.target.device is None and b.manifest.graph.format == "onnx"


def test_tensorrt_bundle_without_tensorrt_says_engine_builds_on_device(trained, tmp_path):
    from converters import convert
    from edge_vad.runtime.backends.tensorrt_engine import gpu_available

    if gpu_available()[0]:
        pytest.skip("this machine builds the engine itself")
    lines = []
    convert(trained[1], "jetson", tmp_path / "j", precision="int8", threads=1, log=lines.append)
    assert any("engine will be built on the device" in line for line in lines)
    plan = json.loads((tmp_path / "j" / "engine_plan.json").read_text())
    assert plan["int8_mode"] == "qdq"
    from test_int8_graphs_for_tensorrt import int32_dequantize_inputs

    assert int32_dequantize_inputs(tmp_path / "j" / "model.onnx") == []  # TensorRT refuses int32 bias DQ


def test_missing_backend_package_names_the_install_command(trained, tmp_path_factory):
    import importlib.util

    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    out, _ = _convert(trained, "jetson", "fp16", tmp_path_factory)
    with pytest.raises(MissingDependency, match=r"the 'tensorrt' extra\): pip install 'tensorrt"):
        CameraStream(load_bundle(out))


def test_package_assembles_bundle_profile_firmware_and_installer(trained, tmp_path_factory, tmp_path):
    import subprocess

    from converters.package import package

    out, _ = _convert(trained, "cpu", "int8", tmp_path_factory)
    archive = package(out, "rpi5", tmp_path / "deploy.tar.gz", **QUIET)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "x", filter="data")
    root = tmp_path / "x" / "deploy"
    for rel in ("bundle/manifest.json", "bundle/model.onnx", "profile.yaml", "install.sh",
                "firmware/systemd/edge-vad.service", "firmware/mosquitto/edge-vad.conf",
                "firmware/rpi/config.txt", "firmware/udev/99-edge-vad-cameras.rules"):
        assert f"deploy/{rel}" in names, rel
    assert not any("/firmware/jetson" in n for n in names)
    script = root / "install.sh"
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert "dtoverlay=imx708" in (root / "firmware/rpi/config.txt").read_text()
    from edge_vad.runtime.bundle.loader import load_bundle

    load_bundle(root / "bundle")  # checksums survive the archive
    with pytest.raises(EdgeVadError, match="runs 'tensorrt'"):
        package(out, "jetson-orin-nano", tmp_path / "wrong.tar.gz", **QUIET)


def test_bench_prints_a_row_per_target(trained, val_clip, tmp_path):
    from edge_vad.benchmarking.bench import bench, format_table

    video, labels = val_clip
    rows = bench(trained[1], tmp_path, targets=["cpu", "openvino-cpu", "jetson"], precisions=["fp32"],
                 val_video=video, val_labels=labels, threads=1, frames=5, **QUIET)
    table = format_table(rows)
    assert table.splitlines()[0] == "| target | precision | status | size MB | AUC | ms/frame | FPS |"
    by = {(r.target, r.precision): r for r in rows}
    for t in ("cpu", "openvino-cpu"):
        r = by[(t, "fp32")]
        assert r.status == "ok" and r.ms > 0 and r.size_mb > 0 and 0 <= r.auc <= 1
    assert by[("jetson", "fp32")].status.startswith("skipped") or by[("jetson", "fp32")].status == "ok"


def test_bench_ops_prints_the_operator_profile_of_a_bundle_and_refuses_a_checkpoint(trained, val_clip, tmp_path_factory):
    from typer.testing import CliRunner

    from cli import app

    out, _ = _convert(trained, "cpu", "fp32", tmp_path_factory)
    video, _ = val_clip
    res = CliRunner().invoke(app, ["bench", str(out), "--val-video", str(video), "--frames", "5", "--threads", "1", "--ops"])
    assert res.exit_code == 0, res.output
    table = res.output.split("Where the model call's time goes")[1]
    assert "| Conv (dense) |" in table and "| all " in table and "onnxruntime, 5 calls" in table
    res = CliRunner().invoke(app, ["bench", str(trained[1]), "--ops"])  # a checkpoint: refused before any work
    assert isinstance(res.exception, EdgeVadError) and "--ops profiles a bundle" in str(res.exception)


# --- TensorRT on a real GPU (skipped, not faked, elsewhere) ----------------------------------

@pytest.mark.gpu
def test_tensorrt_engine_builds_caches_and_matches_pytorch(trained, tmp_path, monkeypatch):
    from edge_vad.runtime.backends.tensorrt_engine import gpu_available

    ok, why = gpu_available()
    if not ok:
        pytest.skip(why)
    from converters import convert
    from edge_vad.runtime.backends.tensorrt import TensorRtBackend

    monkeypatch.setenv("EDGE_VAD_CACHE", str(tmp_path / "cache"))
    lines = []
    m = convert(trained[1], "tensorrt", tmp_path / "t", precision="fp16", threads=1, log=lines.append)
    assert any("engine built and cached" in line for line in lines)
    backend = TensorRtBackend(tmp_path / "t" / "model.onnx", cache_dir=tmp_path / "engines", log=lines.append)
    again = TensorRtBackend(tmp_path / "t" / "model.onnx", cache_dir=tmp_path / "engines", build=False)
    rng = np.random.default_rng(0)
    x = {i.name: rng.random((2, *i.shape[1:]), dtype=np.float32) for i in m.graph.inputs}
    np.testing.assert_allclose(backend.run(x)["error"], again.run(x)["error"], rtol=1e-3)


# ------------------------------------------------------------ precision per CPU (no conversion needed)

_CPUINFO = {
    "avx2-epyc": ("x86_64", "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma f16c bmi2\n"),
    "zen4": ("x86_64", "model name\t: AMD EPYC 9654\nflags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16 avx512bw\n"),
    "sapphire-rapids": ("x86_64", "flags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile\n"),
    "alder-lake": ("x86_64", "flags\t\t: avx2 fma avx_vnni\n"),
    "pi5": ("aarch64", "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
                       "cpuid asimdrdm lrcpc dcpop asimddp\n"),
}


@pytest.mark.parametrize("cpu,vnni,bf16,weights", [("avx2-epyc", False, False, "7-bit"), ("zen4", True, True, "8-bit"),
                                                  ("sapphire-rapids", True, True, "8-bit"),
                                                  ("alder-lake", True, False, "8-bit"), ("pi5", True, False, "8-bit")])
def test_cpu_isa_decides_int8_weights_and_bf16(cpu, vnni, bf16, weights):
    from edge_vad.runtime.backends.cpu_isa import parse_cpuinfo

    isa = parse_cpuinfo(_CPUINFO[cpu][1], _CPUINFO[cpu][0])
    assert (isa.vnni, isa.native_bf16, isa.int8_weights) == (vnni, bf16, weights)
    assert ("no VNNI" in isa.describe()) == (not vnni)


def test_int8_weights_follow_this_cpu_on_cpu_targets_and_can_be_forced():
    from edge_vad.runtime.backends.cpu_isa import cpu_isa

    assert TARGETS["cpu"].int8_weights() == TARGETS["openvino-cpu"].int8_weights() == cpu_isa().int8_weights
    assert TARGETS["cuda"].int8_weights() == TARGETS["jetson"].int8_weights() == "8-bit"
    assert TARGETS["cpu"].int8_weights("7-bit") == "7-bit" and TARGETS["cpu"].int8_weights("8-bit") == "8-bit"
    with pytest.raises(EdgeVadError, match="int8 weights"):
        TARGETS["cpu"].int8_weights("6-bit")


def test_openvino_inference_precision_is_always_set():
    from converters.openvino_ir import OVERFLOW_FIX, int8_weights_for
    from edge_vad.runtime.backends.openvino import inference_config, inference_precision_for

    assert [inference_precision_for("CPU", p) for p in ("fp32", "fp16", "int8", "bf16")] == ["f32", "f32", "f32", "bf16"]
    assert inference_precision_for("GPU", "fp16") == "f16" and inference_precision_for("NPU", "int8") is None
    assert inference_config("CPU", "f32", threads=2) == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                                         "INFERENCE_NUM_THREADS": 2}
    # Without VNNI NNCF's own fix (first layer in 7 bits) unless 7 bits everywhere is forced; with it, full range.
    assert int8_weights_for("7-bit", forced=False) == "7-bit first layer" and int8_weights_for("7-bit", True) == "7-bit"
    assert OVERFLOW_FIX[int8_weights_for("8-bit", forced=False)] == "disable"


def test_bf16_is_refused_where_the_cpu_cannot_run_it(trained, tmp_path):
    """On a CPU without native bf16 OpenVINO would silently compute f32: the converter says so instead."""
    t = TARGETS["openvino-cpu"]
    if not t.runnable_here()[0]:
        pytest.skip(t.runnable_here()[1])
    ok, why = t.runnable_here("bf16")
    if ok:
        pytest.skip("this CPU has native bf16: the bf16 bundles are converted for real in test_convert_every_model...")
    from converters import convert

    with pytest.raises(EdgeVadError, match="no native bf16.*choose fp32"):
        convert(trained[1], "openvino-cpu", tmp_path / "b", precision="bf16", threads=1, **QUIET)
    assert not (tmp_path / "b").exists()
