"""``edge-vad bench``: convert to every target runnable here and print one table.

target | precision | status | size MB | AUC | ms/frame | FPS, in the manner of
Ultralytics' benchmark.  Speed is measured here, on this machine, with the
runtime's own CameraStream, after warm-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from converters.targets import TARGETS
from edge_vad.errors import EdgeVadError


@dataclass
class Row:
    target: str
    precision: str
    status: str
    size_mb: float | None = None
    auc: float | None = None
    ms: float | None = None

    @property
    def fps(self) -> float | None:
        return 1000.0 / self.ms if self.ms else None

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": self.fps}


def time_bundle(bundle_dir: Path, video: Path, frames: int = 60, threads: int | None = None,
                ops: bool = False) -> tuple[float, dict | None]:
    """Median ms per frame of CameraStream.step (preprocess + backend + score), after warm-up; with ``ops``,
    the engine's operator profile of the model call on the same frames (``edge_vad.benchmarking.op_profile``)."""
    from edge_vad.benchmarking.speed_worker import runtime  # the one timing loop, shared with bench --speed

    args = {"bundle": str(bundle_dir), "video": str(video), "start": 0, "skip": None, "frames": frames,
            "threads": threads, "ops": ops}
    res = runtime(args)
    return float(res["ms"]), res.get("ops")


def bench(ckpt: Path, out_dir: Path, targets: list[str] | None = None, precisions: list[str] | None = None,
          val_video: Path | None = None, val_labels: Path | None = None, calib_data: Path | None = None,
          threads: int | None = None, frames: int = 60, log=print) -> list[Row]:
    from converters.convert import convert

    names = targets or list(TARGETS)
    rows = []
    for name in names:
        tgt = TARGETS.get(name)
        if tgt is None:
            raise EdgeVadError(f"unknown target '{name}'; targets: {', '.join(TARGETS)}")
        for prec in precisions or tgt.precisions:
            if prec not in tgt.precisions:
                continue
            ok, why = tgt.runnable_here(prec)
            if not ok:
                rows.append(Row(name, prec, f"skipped: {why}"))
                continue
            out = Path(out_dir) / f"{name}-{prec}"
            try:
                m = convert(ckpt, name, out, precision=prec, calib_data=calib_data, threads=threads,
                            val_video=val_video, val_labels=val_labels, accept_accuracy_drop=True, log=lambda *a: None)
            except EdgeVadError as exc:
                rows.append(Row(name, prec, f"failed: {str(exc).splitlines()[0]}"))
                continue
            size = sum((out / f).stat().st_size for f in m.files) / 1e6
            auc = m.verify.get("auc", {}).get("auc_stream") if m.verify.get("auc") else None
            ms, _ = time_bundle(out, val_video or calib_data or _default_video(ckpt), frames, threads)
            status = "ok" if m.verify.get("auc_passed", True) else "ok (AUC over tolerance)"
            rows.append(Row(name, prec, status, size, auc, ms))
            log(format_table([rows[-1]], header=False))
    return rows


def _default_video(ckpt: Path) -> Path:
    from edge_vad.training.checkpoint import read_info

    path = read_info(Path(ckpt)).get("data", {}).get("path")
    if not path or not Path(path).exists():
        raise EdgeVadError("bench needs footage to time on: pass --val-video or --calib-data")
    return Path(path)


def format_table(rows: list[Row], header: bool = True) -> str:
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    lines = []
    if header:
        lines += ["| target | precision | status | size MB | AUC | ms/frame | FPS |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.target} | {r.precision} | {r.status} | {f(r.size_mb, '.2f')} | {f(r.auc, '.4f')} | "
                     f"{f(r.ms, '.1f')} | {f(r.fps, '.1f')} |")
    return "\n".join(lines)
