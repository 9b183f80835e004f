"""``edge-vad bench --speed``: the papers' way against the runtime's way, side by side, in one run.

For each checkpoint, with one thread count for everything:

* reference: PyTorch eager, batch 1, the whole input clip scored again for every
  frame (``score_windows`` on the last ``clip_length`` preprocessed frames);
* runtime: the converted bundle on each backend runnable here, through
  ``CameraStream.step`` (preprocessing, backend with carried state, score), and
  the backend call alone;
* the machine's limit: dense float32 matrix products (ONNX Runtime and numpy),
  against which the model's counted FLOPs per frame are set;
* peak memory: every measurement runs in its own fresh process
  (``edge_vad/benchmarking/speed_worker.py``), whose ``ru_maxrss`` is reported;
* cameras: 1, 2, 4, 8 cameras sharing one backend, one batched call per round.

Speed is only ever printed, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge_vad.benchmarking.flops import FlopCount, count_flops
from converters.targets import get_target
from edge_vad.errors import EdgeVadError
from edge_vad.benchmarking.op_profile import DENSE_OPS, OpProfile

DEFAULT_TARGETS = ("cpu", "openvino-cpu", "cuda", "tensorrt")
CAMERAS = (1, 2, 4, 8)
MATMUL_SIZES = (1024, 2048)
MIN_SKIP = 3  # frames never timed: first calls allocate, OpenVINO/ORT settle
WORKER = Path(__file__).with_name("speed_worker.py")
REFERENCE = "reference (torch eager, full clip)"


@dataclass
class PathRow:
    model: str
    path: str
    status: str = "ok"
    ms: float | None = None  # end to end per frame: preprocessing + model + score
    core_ms: float | None = None  # the model call alone (backend.run / score_windows)
    peak_mb: float | None = None
    gflop: float | None = None  # dense GFLOP per frame this path computes
    ref_ms: float | None = None
    limit_gflops: float | None = None
    ops: OpProfile | None = None  # the engine's profile of the model call (runtime paths)
    ops_error: str | None = None

    @property
    def fps(self):
        return 1000.0 / self.ms if self.ms else None

    @property
    def dense_fraction(self):
        """Counted FLOPs over the time of the kernels that compute them, as a fraction of the limit."""
        if not (self.ops and self.ops.dense_ms and self.gflop and self.limit_gflops):
            return None
        return self.gflop / (self.ops.dense_ms / 1e3) / self.limit_gflops

    @property
    def speedup(self):
        return self.ref_ms / self.ms if self.ms and self.ref_ms else None

    @property
    def gflops(self):
        return self.gflop / (self.core_ms / 1000) if self.gflop and self.core_ms else None

    @property
    def fraction(self):
        return self.gflops / self.limit_gflops if self.gflops and self.limit_gflops else None


@dataclass
class CameraRow:
    model: str
    target: str
    cameras: int
    status: str = "ok"
    batched: bool = False
    call_ms: float | None = None  # one round: every camera's frame, end to end
    core_ms: float | None = None  # the backend call of that round
    peak_mb: float | None = None
    gflop: float | None = None
    single_fps: float | None = None
    limit_gflops: float | None = None

    @property
    def fps(self):
        return self.cameras * 1000.0 / self.call_ms if self.call_ms else None

    @property
    def scaling(self):
        return self.fps / self.single_fps if self.fps and self.single_fps else None

    @property
    def fraction(self):
        if not (self.gflop and self.core_ms and self.limit_gflops):
            return None
        return self.gflop * self.cameras / (self.core_ms / 1000) / self.limit_gflops


@dataclass
class FlopRow:
    model: str
    step: FlopCount
    clip: FlopCount  # the reference's computation: score_windows on the full clip

    @property
    def ratio(self) -> float:
        return self.step.flops / self.clip.flops if self.clip.flops else float("nan")


@dataclass
class SpeedReport:
    threads: int
    footage: str
    frames: int
    machine: str
    limit_rows: list[dict] = field(default_factory=list)
    flop_rows: list[FlopRow] = field(default_factory=list)
    path_rows: list[PathRow] = field(default_factory=list)
    camera_rows: list[CameraRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def limit_gflops(self) -> float | None:
        return max((r["gflops"] for r in self.limit_rows), default=None)

    def tables(self) -> dict[str, str]:
        return {"limit": _limit_table(self), "flops": _flop_table(self.flop_rows),
                "paths": _path_table(self.path_rows), "ops": _ops_table(self.path_rows),
                "cameras": _camera_table(self.camera_rows)}

    def format(self) -> str:
        t = self.tables()
        head = (f"threads {self.threads} | footage {self.footage} | {self.frames} timed frames per path "
                f"(median) | {self.machine}")
        parts = [head, "", "Machine limit (dense float32 matrix product):", t["limit"], "",
                 "FLOPs per frame (counted from the ONNX graphs):", t["flops"], "",
                 "Per frame, one camera:", t["paths"], "",
                 "Where the model call's time goes (the engine's own profiler, the same frames replayed):", t["ops"], "",
                 "Several cameras on one backend:", t["cameras"]]
        if self.notes:
            parts += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        return "\n".join(parts)


def _f(value, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, fmt) + suffix


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def _table(columns: str, rows: list[list[str]]) -> str:
    """A markdown table; ``columns`` is "title|title…", a title ending in ':' is right-aligned (numbers)."""
    titles = columns.split("|")
    head = "| " + " | ".join(t.rstrip(":") for t in titles) + " |"
    rule = "|" + "|".join("---:" if t.endswith(":") else "---" for t in titles) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(r) + " |" for r in rows])


def _limit_table(report: SpeedReport) -> str:
    best = report.limit_gflops
    return _table("engine|matrix|threads:|GFLOP/s:|", [
        [r["engine"], f"{r['n']}×{r['n']} float32", str(report.threads), f"{r['gflops']:.1f}",
         "limit (best)" if r["gflops"] == best else ""] for r in report.limit_rows])


def _flop_table(rows: list[FlopRow]) -> str:
    return _table("model|step GFLOP/frame:|full-clip GFLOP/frame:|step / full clip:|"
                  "counted (Conv, ConvT, MatMul, Gemm)|not counted", [
                      [r.model, f"{r.step.flops / 1e9:.4f}", f"{r.clip.flops / 1e9:.4f}", f"{r.ratio:.2f}",
                       ", ".join(f"{op}×{n}" for op, n in sorted(r.step.nodes_by_op.items())),
                       r.step.describe_not_counted()] for r in rows])


def _path_table(rows: list[PathRow]) -> str:
    return _table("model|path|ms/frame:|model ms:|FPS:|speed-up:|GFLOP/frame:|GFLOP/s:|achieved/limit:|peak MB:", [
        [r.model, r.path if r.status == "ok" else f"{r.path}: {r.status}", _f(r.ms, ".2f"), _f(r.core_ms, ".2f"),
         _f(r.fps, ".1f"), _f(r.speedup, ".2f", "×"), _f(r.gflop, ".4f"), _f(r.gflops, ".2f"), _pct(r.fraction),
         _f(r.peak_mb, ".0f")] for r in rows])


def _ops_table(rows: list[PathRow]) -> str:
    def other(r: PathRow) -> str:
        rest = [(op, ms, share) for op, ms, share in r.ops.top(12) if op not in DENSE_OPS[r.ops.backend]]
        return ", ".join(f"{op} {100 * share:.0f}%" for op, _, share in rest[:5])

    out = []
    for r in rows:
        if r.ops is None and r.ops_error is None:
            continue
        if r.ops is None:
            out.append([r.model, f"{r.path}: profile failed ({r.ops_error})"] + ["-"] * 6)
            continue
        dense = r.ops.dense_ms / r.ops.total_ms if r.ops.total_ms else None
        gflops = r.gflop / (r.ops.dense_ms / 1e3) if r.gflop and r.ops.dense_ms else None
        out.append([r.model, r.path, f"{r.ops.total_ms:.2f}", f"{r.ops.dense_ms:.2f}", _pct(dense), _f(gflops, ".1f"),
                    _pct(r.dense_fraction), other(r)])
    return _table("model|path|kernels ms:|dense kernels ms:|dense share:|dense GFLOP/s:|dense achieved/limit:|"
                  "largest other kernels (share of kernel time)", out)


def _camera_table(rows: list[CameraRow]) -> str:
    return _table("model|target|cameras:|batched call|ms/round:|ms/frame:|frames/s (all cameras):|× 1 camera:|"
                  "achieved/limit:|peak MB:", [
                      [r.model, r.target if r.status == "ok" else f"{r.target}: {r.status}", str(r.cameras),
                       "yes" if r.batched else "no", _f(r.call_ms, ".2f"), _f(r.call_ms and r.call_ms / r.cameras, ".2f"),
                       _f(r.fps, ".1f"), _f(r.scaling, ".2f"), _pct(r.fraction), _f(r.peak_mb, ".0f")] for r in rows])


# ------------------------------------------------------------------ running


def run_worker(task: str, threads: int, timeout: float = 1800, **args) -> dict:
    """One measurement in a fresh interpreter; returns its result, or {"error": ...}."""
    payload = json.dumps({"task": task, "threads": threads, **args}, default=str)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(WORKER.parents[1]), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run([sys.executable, str(WORKER), payload], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"{task} measurement did not finish within {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"{task} worker exited {proc.returncode}: {tail}"}


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "load avg %.2f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    from edge_vad.runtime.backends.cpu_isa import cpu_isa

    # The instruction set decides what INT8 and bf16 can gain here (VNNI, native bf16): name it.
    return f"{cpu} [{cpu_isa().describe()}], {os.cpu_count()} logical CPUs, {load}"


def _footage(ckpt: Path, info: dict, video: Path | None) -> tuple[Path, int, int]:
    """The user's video (all of it), else the checkpoint's own training footage range."""
    from edge_vad.data.frames import video_info

    if video is not None:
        return Path(video), 0, video_info(video).frames
    data = info.get("data", {})
    path = data.get("path")
    if not path or not Path(path).exists():
        raise EdgeVadError(f"{ckpt}/config.json: its training footage {path!r} is not here; pass --val-video VIDEO to time on")
    stop = data.get("stop") or video_info(path).frames
    return Path(path), int(data.get("start") or 0), int(stop)


class _WindowView:
    """The model as the reference runs it, for export: a WindowStep over the full clip,
    whatever step the model itself deploys."""

    def __init__(self, model):
        self.model = model

    def step_module(self):
        from edge_vad.models.base import WindowStep

        return WindowStep(self.model)

    def input_spec(self):
        return self.model.input_spec()

    def state_specs(self):
        from edge_vad.models.base import StateSpec

        s = self.model.input_spec()
        return [StateSpec("frames", ((self.model.clip_length - 1) * s.channels, s.height, s.width))]


def _count(model, work: Path, video: Path, start: int, stop: int, skip: int) -> tuple[FlopCount, FlopCount]:
    """FLOPs of the step graph and the full-clip graph; work that depends on what is in view
    (objects) is counted on the footage the paths are timed on."""
    from converters.onnx_export import export_step
    from edge_vad.data.frames import read_frames
    from edge_vad.data.preprocess import FramePreprocessor

    def footage():
        prep = FramePreprocessor(model.input_spec())
        return (prep(f) for f in read_frames(video, start, stop))

    counts = []
    for view, name in ((model, "step.onnx"), (_WindowView(model), "clip.onnx")):
        export_step(view, work / name)
        step = view.step_module()
        state = list(zip(step.input_names[1:], step.output_names[2:]))
        counts.append(count_flops(work / name, frames=footage(), state=state, skip=skip))
    return counts[0], counts[1]


def speed(checkpoints: list[Path], targets: list[str] | None = None, threads: int = 2, frames: int = 60,
          video: Path | None = None, cameras: tuple[int, ...] = CAMERAS, out_dir: Path | None = None,
          matmul_sizes: tuple[int, ...] = MATMUL_SIZES, matmul_seconds: float = 1.0, log=print) -> SpeedReport:
    from converters.convert import convert
    from edge_vad.training.checkpoint import CALIBRATION, load_model, read_calibration, read_info

    if threads < 1 or frames < 1:
        raise EdgeVadError("--threads and --frames must be at least 1")
    # "--targets cpu,openvino-cpu" and "--targets cpu --targets openvino-cpu" both work.
    # A target may name its precision ("cpu:int8"); without one it runs at the target's default.
    names = [t.strip() for v in (targets or DEFAULT_TARGETS) for t in v.split(",") if t.strip()]
    for name in names:
        get_target(*_target_and_precision(name))  # unknown names fail before any work
    infos = [(Path(c), read_info(Path(c))) for c in checkpoints]
    for ckpt, _ in infos:
        if read_calibration(ckpt) is None:
            raise EdgeVadError(f"{ckpt}: has no {CALIBRATION}; training did not finish (run 'edge-vad train' again to resume)")
    first_video, start, stop = _footage(*infos[0], video)
    report = SpeedReport(threads, f"{first_video} frames {start}-{stop - 1}", frames, _machine())

    log(f"measuring dense matmul limit ({', '.join(map(str, matmul_sizes))}) with {threads} thread(s)")
    lim = run_worker("limit", threads, sizes=list(matmul_sizes), seconds=matmul_seconds)
    if "error" in lim:
        raise EdgeVadError(f"matmul limit measurement failed: {lim['error']}")
    report.limit_rows = lim["rows"]
    limit = report.limit_gflops

    with tempfile.TemporaryDirectory(prefix="edge-vad-speed-") as tmp:
        out_root = Path(out_dir) if out_dir else Path(tmp)
        for ckpt, info in infos:
            label = ckpt.name
            src, start, stop = _footage(ckpt, info, video)
            model, _ = load_model(ckpt)
            skip = max(model.clip_length - 1, model.warmup_frames, MIN_SKIP)
            if stop - start < skip + frames:
                raise EdgeVadError(f"{src}: frames {start}-{stop - 1} are {stop - start}, fewer than --frames {frames} "
                                   f"+ {skip} warm-up frames that {label} needs")
            work = Path(tmp) / f"flops-{label}"
            work.mkdir()
            log(f"{label}: counting FLOPs of the step graph and of the full-clip graph")
            step_flops, clip_flops = _count(model, work, src, start, start + skip + frames, skip)
            del model
            flops = FlopRow(label, step_flops, clip_flops)
            report.flop_rows.append(flops)
            if flops.ratio > 0.9:
                report.notes.append(f"{label}: the step graph does {flops.ratio:.2f}× the full clip's dense FLOPs: "
                                    "it recomputes the whole clip every frame instead of carrying state")
            common = {"video": str(src), "start": start, "skip": skip, "frames": frames}

            log(f"{label}: reference (torch eager, full clip)")
            ref = run_worker("reference", threads, ckpt=str(ckpt), **common)
            ref_row = _path_row(label, REFERENCE, ref, clip_flops.flops / 1e9, limit)
            report.path_rows.append(ref_row)
            cuda = _cuda_reference(names, threads, ckpt, common, label, clip_flops, report)

            gap = max(0, (stop - start - skip - frames) // max(1, max(cameras) - 1))
            for name in names:
                target_name, asked = _target_and_precision(name)
                tgt, precision = get_target(target_name, asked)
                path = f"{target_name} ({tgt.backend} {precision})"
                ok, why = tgt.runnable_here(precision)
                if not ok:
                    report.path_rows.append(PathRow(label, path, f"skipped ({why})"))
                    continue
                bundle = out_root / label / f"{target_name}-{precision}"
                log(f"{label}: converting to {name}")
                try:
                    convert(ckpt, target_name, bundle, precision=precision, threads=threads, log=lambda *a: None)
                except EdgeVadError as exc:
                    report.path_rows.append(PathRow(label, path, f"conversion failed ({str(exc).splitlines()[0]})"))
                    continue
                log(f"{label}: timing {name}")
                res = run_worker("runtime", threads, bundle=str(bundle), ops=True, **common)
                if res.get("torch_loaded"):
                    report.notes.append(f"{label}/{name}: the runtime loaded torch; its peak memory includes it")
                on_gpu = bool(tgt.device and tgt.device.startswith("cuda"))
                # A GPU run is set against the GPU reference; the CPU's matmul limit says nothing about it.
                base, lim = (cuda or ref_row, None) if on_gpu else (ref_row, limit)
                row = _path_row(label, path, res, step_flops.flops / 1e9, lim, base.ms)
                report.path_rows.append(row)
                for n in cameras:
                    log(f"{label}: {n} camera(s) on {name}")
                    starts = [start + i * gap for i in range(n)]
                    res = run_worker("cameras", threads, bundle=str(bundle), **common, starts=starts)
                    report.camera_rows.append(_camera_row(label, name, n, res, step_flops.flops / 1e9, lim))
                singles = [r for r in report.camera_rows if r.model == label and r.target == name]
                one = next((r.fps for r in singles if r.cameras == 1), None)
                for r in singles:
                    r.single_fps = one
    return report


def _target_and_precision(name: str) -> tuple[str, str | None]:
    target, _, precision = name.partition(":")
    return target, precision or None


def _path_row(model: str, path: str, res: dict, gflop: float, limit: float | None, ref_ms: float | None = None) -> PathRow:
    if "error" in res:
        return PathRow(model, path, f"failed ({res['error']})")
    if path == REFERENCE:
        ref_ms = res["ms"]
    ops = res.get("ops") or {}
    return PathRow(model, path, "ok", res["ms"], res["core_ms"], res["peak_mb"], gflop, ref_ms, limit,
                   ops=OpProfile.from_dict(ops) if "backend" in ops else None, ops_error=ops.get("error"))


def _camera_row(model, target, n, res, gflop, limit) -> CameraRow:
    if "error" in res:
        return CameraRow(model, target, n, f"failed ({res['error']})")
    return CameraRow(model, target, n, "ok", res["batched"], res["ms"], res["core_ms"], res["peak_mb"], gflop,
                     limit_gflops=limit)


def _cuda_reference(names, threads, ckpt, common, label, clip_flops, report) -> PathRow | None:
    """The reference on the GPU too, when a GPU target is asked for and torch sees one."""
    if not any(_target_and_precision(n)[0] in ("cuda", "cuda-trt", "tensorrt") for n in names):
        return None
    import torch

    if not torch.cuda.is_available():
        report.path_rows.append(PathRow(label, "reference on CUDA", "skipped (torch sees no CUDA device)"))
        return None
    res = run_worker("reference", threads, ckpt=str(ckpt), device="cuda", **common)
    row = _path_row(label, "reference on CUDA (torch eager, full clip)", res, clip_flops.flops / 1e9, None)
    if row.status == "ok":
        row.ref_ms = row.ms
        report.notes.append(f"{label}: CUDA reference on {res.get('gpu')}, peak GPU memory {res.get('gpu_peak_mb', 0):.0f} MB")
    report.path_rows.append(row)
    return row if row.status == "ok" else None
