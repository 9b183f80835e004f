"""The ``edge-vad`` command line: train, eval, convert, run, listen, demo."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from edge_vad.errors import EdgeVadError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Video anomaly detection from research models to cameras.",
)


def _parse_sets(values: list[str] | None) -> dict:
    out = {}
    for item in values or []:
        if "=" not in item:
            raise EdgeVadError(f"--set {item!r}: expected KEY=VALUE, e.g. --set lr=0.0005")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@app.command("models")
def models_cmd():
    """List the registered models and their presets."""
    from edge_vad.models import entries

    for e in entries():
        presets = ", ".join(f"{p} ({c['size']}px)" for p, c in e.presets.items())
        typer.echo(f"{e.name:12s} {e.summary}\n{'':12s} presets: {presets}")


@app.command()
def train(
    model: str = typer.Option(..., help="registered model name (see 'edge-vad models')"),
    data: Path = typer.Option(..., help="normal training video or image folder"),
    out: Path = typer.Option(..., help="checkpoint directory (resumes if it exists)"),
    preset: str = typer.Option("edge", help="model preset: paper or edge"),
    frames: Optional[str] = typer.Option(None, help="frame range START:STOP of the training video, e.g. 0:480"),
    epochs: Optional[int] = typer.Option(None, help="override the preset's epoch count"),
    holdout: float = typer.Option(0.25, help="fraction of frames held out (3 blocks spread over the range) to calibrate the score"),
    target_far: float = typer.Option(0.01, help="false-alarm rate the threshold is set for"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a preset option, KEY=VALUE"),
    seed: int = 0,
    threads: Optional[int] = typer.Option(None, help="torch CPU threads"),
):
    """Train a model on normal footage; weights in safetensors, config in JSON."""
    from edge_vad.training.trainer import train as run_train

    run_train(model, preset, data, out, frames=frames, holdout=holdout, epochs=epochs,
              overrides=_parse_sets(set_), seed=seed, threads=threads, target_far=target_far)


@app.command()
def calibrate(
    ckpt: Path = typer.Argument(..., help="checkpoint directory"),
    data: Optional[Path] = typer.Option(None, help="normal footage (default: the checkpoint's held-out frames)"),
    frames: Optional[str] = typer.Option(None, help="frame range START:STOP of --data"),
    target_far: float = typer.Option(0.01, help="false-alarm rate the threshold is set for"),
):
    """Fit the streaming score and threshold on normal footage (e.g. from the target camera)."""
    from edge_vad.training.trainer import calibrate_checkpoint

    calibrate_checkpoint(ckpt, data, frames, target_far)


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help="checkpoint directory, bundle directory, or 'framediff'"),
    video: Path = typer.Option(..., help="test video or image folder"),
    labels: Path = typer.Option(..., help="per-frame labels (.npy or .txt, 0 normal / 1 anomalous)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    report: Optional[Path] = typer.Option(None, help="write ROC and timeline plots (PNG) here"),
    threads: Optional[int] = None,
):
    """Frame-level AUC (streaming and offline protocols) and EER on a labelled video."""
    from edge_vad.data.frames import video_info
    from edge_vad.data.labels import load_labels
    from edge_vad.evaluation.evaluate import evaluate, format_result
    from edge_vad.evaluation.scorers import score_any

    y = load_labels(labels, video_info(video).frames)
    scores = score_any(model, video, threads=threads)
    result = evaluate(scores, y)
    if report:
        from edge_vad.evaluation.report import write_report

        result["report"] = [str(p) for p in write_report(scores, y, result, report)]
    typer.echo(json.dumps(result) if as_json else format_result(result))


@app.command()
def convert(
    ckpt: Path = typer.Argument(..., help="checkpoint directory from 'edge-vad train'"),
    target: str = typer.Option("cpu", help="deployment target (see converters/targets.py)"),
    out: Path = typer.Option(..., help="bundle directory to write"),
    precision: Optional[str] = typer.Option(None, help="precision (default: the target's first)"),
    calib_data: Optional[Path] = typer.Option(None, help="normal video to verify (and later calibrate) on"),
    threads: Optional[int] = None,
):
    """Export to ONNX, verify against PyTorch on real frames, write a bundle."""
    from converters import convert as run_convert

    run_convert(ckpt, target, out, precision=precision, calib_data=calib_data, threads=threads)


@app.command()
def run(
    bundle: Path = typer.Option(..., help="bundle directory from 'edge-vad convert'"),
    source: str = typer.Option(..., help="video file, /dev/videoN or index, or rtsp:// URL"),
    camera_id: str = typer.Option("cam0", help="camera name used in topics and events"),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix"),
    device_id: Optional[str] = typer.Option(None, help="device name in topics (default: hostname)"),
    threads: Optional[int] = None,
    verbose: bool = False,
):
    """Score a camera with a bundle and publish anomaly events over MQTT."""
    from edge_vad.runtime.daemon import run_camera

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    summary = run_camera(bundle, source, camera_id, broker, prefix=topic_prefix, device_id=device_id, threads=threads)
    starts = sum(e["type"] == "start" for e in summary.events)
    typer.echo(f"{camera_id}: {summary.frames} frames at {summary.fps:.1f} fps, {starts} events, "
               f"{len(summary.events)} messages published and acknowledged")


@app.command()
def listen(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix"),
    device: str = typer.Option("+", help="device to follow (+ for all)"),
    camera: str = typer.Option("+", help="camera to follow (+ for all)"),
    count: Optional[int] = typer.Option(None, help="exit after this many events"),
    timeout: Optional[float] = typer.Option(None, help="exit after this many seconds"),
):
    """Print alerts as they arrive."""
    from edge_vad.runtime.listen import listen as run_listen

    run_listen(broker, prefix=topic_prefix, device=device, camera=camera, max_events=count, timeout=timeout)


@app.command("make-testset")
def make_testset_cmd(
    video: Path = typer.Option(Path("../shared/data/vtest.avi"), help="source footage"),
    out: Path = typer.Option(..., help="output folder"),
    start: int = typer.Option(480, help="first frame (frames before 480 are training data)"),
    stop: int = typer.Option(795, help="end frame (exclusive)"),
    seed: int = 0,
):
    """Build the labelled anomaly test set from vtest frames 480–794."""
    from edge_vad.data.testset import make_testset

    paths = make_testset(video, out, start=start, stop=stop, seed=seed)
    for k, v in paths.items():
        typer.echo(f"{k:8s} {v}")


@app.command()
def demo(
    model: str = typer.Option("stconvlstm", help="model whose shipped edge bundle to run"),
    broker: Optional[str] = typer.Option(None, help="MQTT broker URL (default: an embedded broker)"),
    out: Path = typer.Option(Path("edge-vad-demo"), help="where the report goes"),
    threads: Optional[int] = None,
):
    """The whole path on embedded defaults: clip → model → events over MQTT → report."""
    from edge_vad.demo import run_demo

    run_demo(model, broker, out, threads=threads)


def main() -> None:
    try:
        app()
    except EdgeVadError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
