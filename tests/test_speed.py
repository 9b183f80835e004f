"""``edge-vad bench --speed``: the FLOP counter against closed-form counts, and the report's shape
on a tiny real model. Speed itself is never asserted; only that every number is there and sane."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from edge_vad.errors import EdgeVadError
from helpers import REPO


def _hand_graph():
    """Conv (grouped, strided) → ConvTranspose → MatMul, plus a Gemm with transA and a Relu,
    with a dynamic batch axis like a bundle's."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = lambda name, *shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["y1"], group=2, strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("ConvTranspose", ["y1", "w2"], ["y2"], strides=[2, 2], kernel_shape=[2, 2]),
        helper.make_node("MatMul", ["y2", "w3"], ["y3"]),
        helper.make_node("Relu", ["y3"], ["out"]),
        helper.make_node("Gemm", ["a", "w4"], ["g"], transA=1),
    ]
    graph = helper.make_graph(
        nodes, "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 10, 10]),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, [5, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 10, 7]),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, [8, 4])],
        [init("w1", 6, 2, 3, 3), init("w2", 6, 3, 2, 2), init("w3", 10, 7), init("w4", 5, 4)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_flop_count_matches_closed_form():
    import onnxruntime as ort

    from edge_vad.benchmarking.flops import count_flops

    model = _hand_graph()
    # The shapes the closed forms below assume are the ones the graph really produces.
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out, g = session.run(None, {"x": np.zeros((1, 4, 10, 10), np.float32), "a": np.zeros((5, 8), np.float32)})
    assert out.shape == (1, 3, 10, 7) and g.shape == (8, 4)

    conv = (6 * 5 * 5) * (4 // 2) * 3 * 3  # outputs × C/groups × kernel; (10 + 2 − 3) // 2 + 1 = 5
    convt = (6 * 5 * 5) * 3 * 2 * 2  # inputs × M/groups × kernel
    matmul = (3 * 10 * 7) * 10  # outputs × K
    gemm = (8 * 4) * 5  # outputs × K, K from Aᵀ
    count = count_flops(model)
    assert dict(count.macs_by_op) == {"Conv": conv, "ConvTranspose": convt, "MatMul": matmul, "Gemm": gemm}
    assert count.flops == 2 * (conv + convt + matmul + gemm) == 13520
    assert dict(count.not_counted) == {"Relu": 1} and not count.unknown_shape
    # The batch axis scales the per-camera ops and not the Gemm, whose input has no batch.
    assert count_flops(model, batch=3).macs == 3 * (conv + convt + matmul) + gemm


def test_flop_count_of_work_sized_by_what_the_camera_sees():
    """A graph that runs its Conv once per object (HF2-VAD's cubes): shape inference cannot size it,
    a run over frames can, with the state carried as a camera carries it."""
    from onnx import TensorProto, helper, numpy_helper

    from edge_vad.benchmarking.flops import count_flops

    w = numpy_helper.from_array(np.ones((3, 1, 3, 3), np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 1, 4, 4], np.int64), "shape")
    # The objects are the slots of the *previous* frame (the state) that hold anything.
    nodes = [
        helper.make_node("ReduceMax", ["prev"], ["peak"], axes=[2, 3], keepdims=0),
        helper.make_node("Cast", ["peak"], ["flag"], to=TensorProto.BOOL),
        helper.make_node("NonZero", ["flag"], ["nz"]),
        helper.make_node("Gather", ["nz", "one"], ["idx"], axis=0),
        helper.make_node("Gather", ["prev", "idx"], ["objects"], axis=1),
        helper.make_node("Reshape", ["objects", "shape"], ["cubes"]),
        helper.make_node("Conv", ["cubes", "w"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("ReduceSum", ["y"], ["error"], keepdims=0),
        helper.make_node("Identity", ["x"], ["prev_out"]),
    ]
    graph = helper.make_graph(
        nodes, "objects",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, 4, 4]),
         helper.make_tensor_value_info("prev", TensorProto.FLOAT, ["batch", 5, 4, 4])],
        [helper.make_tensor_value_info("error", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("prev_out", TensorProto.FLOAT, ["batch", 5, 4, 4])],
        [w, shape, numpy_helper.from_array(np.array(1, np.int64), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert dict(count_flops(model).unknown_shape) == {"Conv": 1}

    frames = [np.zeros((5, 4, 4), np.float32) for _ in range(4)]
    for i, n in enumerate([2, 1, 4, 3]):  # objects in view per frame
        frames[i][:n] = 1
    count = count_flops(model, frames=frames, state=[("prev", "prev_out")], skip=2)
    # Timed frames 2 and 3 run on frames 1 and 2 (1 and 4 objects): 432 MACs per object.
    assert count.macs == 432 * (1 + 4) / 2 and count.sampled_frames == 2 and not count.unknown_shape


def test_speed_report_on_a_tiny_model(daemon_bundle, tmp_path):
    from edge_vad.benchmarking.flops import count_flops
    from edge_vad.benchmarking.speed import REFERENCE, speed

    ckpt = daemon_bundle.parent / "ckpt"  # the tiny stconvlstm the daemon tests trained
    report = speed([ckpt], targets=["cpu", "tensorrt"], threads=1, frames=4, cameras=(1, 2), out_dir=tmp_path,
                   matmul_sizes=(256,), matmul_seconds=0.05, log=lambda *a: None)

    tables = report.tables()
    text = report.format()
    for name, table in tables.items():
        lines = table.splitlines()
        assert table in text and len(lines) >= 3, name
        widths = {line.count("|") for line in lines}
        assert len(widths) == 1, (name, table)  # every row has the header's columns
    assert tables["paths"].splitlines()[0] == (
        "| model | path | ms/frame | model ms | FPS | speed-up | GFLOP/frame | GFLOP/s | achieved/limit | peak MB |")

    finite = lambda v: v is not None and math.isfinite(v) and v > 0  # noqa: E731
    assert {r["engine"].split()[0] for r in report.limit_rows} == {"onnxruntime", "numpy"}
    assert all(finite(r["gflops"]) for r in report.limit_rows)

    (flops,) = report.flop_rows
    # The step's count is the shipped graph's, and a step never costs more than the full clip.
    assert flops.step.flops == count_flops(tmp_path / ckpt.name / "cpu-fp32" / "model.onnx").flops > 0
    assert 0 < flops.step.flops <= flops.clip.flops

    rows = {r.path.split(" (")[0]: r for r in report.path_rows}
    # A GPU target asked for brings the torch reference on CUDA too (a skipped row without one).
    assert set(rows) - {"reference on CUDA"} == {"reference", "cpu", "tensorrt"}
    assert rows["tensorrt"].status.startswith("skipped") or rows["tensorrt"].status == "ok"
    for key in ("reference", "cpu"):
        r = rows[key]
        assert r.status == "ok", r.status
        for value in (r.ms, r.core_ms, r.fps, r.speedup, r.gflop, r.gflops, r.fraction, r.peak_mb):
            assert finite(value), (key, r)
        assert r.core_ms <= r.ms
    assert rows["reference"].path == REFERENCE and rows["reference"].speedup == 1.0
    # The runtime path's model call is profiled; torch's reference is not.
    assert rows["reference"].ops is None and rows["cpu"].ops is not None, rows["cpu"].ops_error
    assert 0 < rows["cpu"].ops.dense_ms < rows["cpu"].ops.total_ms and finite(rows["cpu"].dense_fraction)
    assert rows["cpu"].ops.runs == 4 and "cpu (onnxruntime fp32)" in tables["ops"]
    assert rows["reference"].gflop == flops.clip.flops / 1e9 and rows["cpu"].gflop == flops.step.flops / 1e9

    cams = [r for r in report.camera_rows if r.target == "cpu"]
    assert [r.cameras for r in cams] == [1, 2]
    assert [r.batched for r in cams] == [False, True]  # bundles have a dynamic batch axis
    for r in cams:
        assert r.status == "ok" and all(finite(v) for v in (r.call_ms, r.core_ms, r.fps, r.scaling, r.fraction, r.peak_mb))


def test_speed_mistakes_are_one_line_errors(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, str(REPO / "cli.py"), "bench", *map(str, args)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    cases = [
        (("--speed", tmp_path), f"{tmp_path}: not a checkpoint directory"),
        ((tmp_path, tmp_path), "several only with --speed"),
    ]
    for args, message in cases:
        proc = cli(*args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_speed_refuses_unknown_targets_before_work(tmp_path):
    from edge_vad.benchmarking.speed import speed
    from edge_vad.errors import EdgeVadError

    with pytest.raises(EdgeVadError, match="unknown target 'toaster'"):
        speed([tmp_path], targets=["cpu,toaster"], log=lambda *a: None)


def test_a_target_may_name_its_precision_and_a_wrong_one_fails_before_any_work(tmp_path):
    from edge_vad.benchmarking.speed import speed

    # The checkpoint does not exist: the target list is checked first.
    with pytest.raises(EdgeVadError, match="does not support precision 'int4'"):
        speed([tmp_path / "missing"], targets=["cpu,openvino-cpu:int4"], log=lambda *a: None)
    with pytest.raises(EdgeVadError, match="unknown target .cpux."):
        speed([tmp_path / "missing"], targets=["cpux:int8"], log=lambda *a: None)
