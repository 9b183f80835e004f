"""One measurement of ``edge-vad bench --speed``, in a fresh interpreter.

Run by path (``python edge_vad/benchmarking/speed_worker.py '{json}'``) with nothing but the
stdlib imported first: the runtime's peak memory must not include a library it never loads
(torch, which the parent ``edge-vad bench --speed`` process has loaded for the reference). Each
measurement gets its own process, so its peak RSS (VmHWM) is its own:
interpreter, libraries, model, buffers, one decoded frame per camera.

Prints one line ``RESULT {json}`` on stdout. Only stdlib is imported before the
thread counts are put in the environment, so BLAS/OpenMP pools start at that size.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

RESULT = "RESULT "

# Run by path, Python put this folder first on sys.path; its modules (package.py, targets.py...)
# must not shadow anything a library imports.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]


def _threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    import cv2

    cv2.setNumThreads(n)  # preprocessing (resize, DIS flow) gets the same cores as the model


def _peak_mb() -> float:
    """Peak resident memory of this process's own image.

    Linux: VmHWM. Not ru_maxrss, which exec carries over from the forked parent:
    every worker would report at least the parent's RSS (torch and all).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _summary(total: list[float], core: list[float], **extra) -> dict:
    return {"ms": statistics.median(total) * 1e3, "core_ms": statistics.median(core) * 1e3, "timed": len(total),
            "peak_mb": _peak_mb(), "torch_loaded": "torch" in sys.modules, **extra}


class _TimedBackend:
    """The stream's own backend, with the duration of its last call kept (and, when asked, its inputs)."""

    def __init__(self, backend):
        self.inner, self.name, self.last = backend, backend.name, 0.0
        self.record: list | None = None  # a list: every call's inputs are appended, copied, so no reused buffer changes them later

    def run(self, inputs):
        if self.record is not None:
            self.record.append({k: v.copy() for k, v in inputs.items()})
        t = time.perf_counter()
        out = self.inner.run(inputs)
        self.last = time.perf_counter() - t
        return out


def limit(a: dict) -> dict:
    """Dense float32 matrix products at the run's thread count: ONNX Runtime's MatMul and numpy's."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rows = []
    for n in a["sizes"]:
        rng = np.random.default_rng(0)
        x, y = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in ("a", "b")],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = a["threads"]
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        engines = {"onnxruntime MatMul": lambda: session.run(None, {"a": x, "b": y}),
                   f"numpy matmul ({np.__version__})": lambda: x @ y}
        for engine, fn in engines.items():
            fn()  # first call allocates and packs
            times = []
            deadline = time.perf_counter() + a["seconds"]
            while len(times) < 3 or time.perf_counter() < deadline:
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            rows.append({"engine": engine, "n": n, "gflops": 2 * n**3 / statistics.median(times) / 1e9})
    return {"rows": rows, "peak_mb": _peak_mb(), "onnx": onnx.__version__}


def reference(a: dict) -> dict:
    """The papers' way: torch eager, batch 1, the whole clip scored again for every frame."""
    from collections import deque

    import torch

    from edge_vad.data.frames import read_frames
    from edge_vad.data.preprocess import FramePreprocessor
    from edge_vad.data.spec import InputSpec
    from edge_vad.scoring.streaming import Calibration, StreamingScorer
    from edge_vad.training.checkpoint import load_model, read_calibration

    torch.set_num_threads(a["threads"])
    device = torch.device(a.get("device", "cpu"))
    model, info = load_model(a["ckpt"])
    model.to(device)
    prep = FramePreprocessor(InputSpec(**info["input"]))
    scorer = StreamingScorer(Calibration.from_dict(read_calibration(a["ckpt"])))
    window: deque = deque(maxlen=model.clip_length)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    total, core = [], []
    with torch.inference_mode():
        frames = read_frames(a["video"], a["start"], a["start"] + a["skip"] + a["frames"])
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            window.append(torch.from_numpy(prep(frame)))
            if len(window) < model.clip_length:
                continue
            clip = torch.stack(tuple(window))[None].to(device)
            sync()
            t1 = time.perf_counter()
            out = model.score_windows(clip)
            error_map = out["error_map"][0, 0].cpu().numpy()  # waits for the device
            t2 = time.perf_counter()
            scorer(error_map)
            t3 = time.perf_counter()
            if i >= a["skip"]:
                total.append(t3 - t0)
                core.append(t2 - t1)
    extra = {}
    if device.type == "cuda":
        extra = {"gpu": torch.cuda.get_device_name(device), "gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    return _summary(total, core, **extra)


def runtime(a: dict) -> dict:
    """The runtime's way: CameraStream.step (preprocess, backend with carried state, score); the backend call timed too."""
    from edge_vad.data.frames import read_frames
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream

    bundle = load_bundle(a["bundle"])
    stream = CameraStream(bundle, threads=a["threads"])
    stream.backend = timed = _TimedBackend(stream.backend)
    skip = stream.warmup if a.get("skip") is None else a["skip"]
    total, core = [], []
    frames = lambda: read_frames(a["video"], a["start"], a["start"] + skip + a["frames"])  # noqa: E731
    for i, frame in enumerate(frames()):
        t = time.perf_counter()
        stream.step(frame)
        dt = time.perf_counter() - t
        if i >= skip:
            total.append(dt)
            core.append(timed.last)
    summary = _summary(total, core)  # peak memory read here: the profiling pass below is not the runtime's
    if a.get("ops"):
        summary["ops"] = _op_profile(bundle, stream, timed, frames(), skip, a["threads"], summary["core_ms"])
    return summary


def _op_profile(bundle, stream, timed, frames, skip, threads, call_ms) -> dict:
    """The same frames again, untimed, their model inputs kept and replayed under the engine's profiler."""
    from edge_vad.benchmarking.op_profile import profile_ops

    feeds = []
    stream.reset()
    for i, frame in enumerate(frames):
        timed.record = feeds if i >= skip else None
        stream.step(frame)
    timed.record = None
    try:
        return profile_ops(bundle, feeds, threads, call_ms).to_dict()
    except Exception as exc:  # a profiler that fails costs the table's row, not the timing
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def cameras(a: dict) -> dict:
    """N cameras on one backend: one batched call per round of frames (step_batch)."""
    from edge_vad.data.frames import read_frames
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream, step_batch

    bundle = load_bundle(a["bundle"])
    first = CameraStream(bundle, threads=a["threads"])
    first.backend = timed = _TimedBackend(first.backend)
    streams = [first] + [CameraStream(bundle, backend=timed) for _ in a["starts"][1:]]
    sources = [read_frames(a["video"], s, s + a["skip"] + a["frames"]) for s in a["starts"]]
    total, core = [], []
    for i, frames in enumerate(zip(*sources)):
        t = time.perf_counter()
        step_batch(streams, list(frames))
        dt = time.perf_counter() - t
        if i >= a["skip"]:
            total.append(dt)
            core.append(timed.last)
    return _summary(total, core, batched=len(streams) > 1 and first.batchable)


TASKS = {"limit": limit, "reference": reference, "runtime": runtime, "cameras": cameras}


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    _threads(args["threads"])
    try:
        result = TASKS[args["task"]](args)
    except Exception as exc:  # reported as the row's status; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        print(RESULT + json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}))
        return 1
    print(RESULT + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
