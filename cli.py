"""The ``edge-vad`` command line: train, eval, convert, run, listen, demo."""

from __future__ import annotations

import json
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
        # Square models give "size"; non-square ones (hf2vad keeps the camera's aspect) height × width.
        presets = ", ".join(f"{p} ({c['size']}px)" if "size" in c else f"{p} ({c['height']}×{c['width']}px)"
                            for p, c in e.presets.items())
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
    set_: Optional[List[str]] = typer.Option(None, "--set", help="change a score_* option, KEY=VALUE (saved)"),
):
    """Fit the streaming score and threshold on normal footage (e.g. from the target camera)."""
    from edge_vad.training.trainer import calibrate_checkpoint

    calibrate_checkpoint(ckpt, data, frames, target_far, overrides=_parse_sets(set_))


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
    out: Path = typer.Option(..., help="bundle directory to write"),
    target: Optional[str] = typer.Option(None, help="deployment target: cpu, cuda, cuda-trt, openvino-cpu/gpu/npu, jetson, tensorrt (default: the profile's, else cpu)"),
    precision: Optional[str] = typer.Option(None, help="fp32, fp16 or int8 (default: the profile's, else the target's first)"),
    profile: Optional[str] = typer.Option(None, help="device profile name or YAML (see 'edge-vad profiles list')"),
    calib_data: Optional[Path] = typer.Option(None, help="normal footage (video or image folder) to calibrate INT8 and verify on"),
    val_video: Optional[Path] = typer.Option(None, help="labelled test video for the AUC gate"),
    val_labels: Optional[Path] = typer.Option(None, help="per-frame labels of --val-video (.npy or .txt)"),
    auc_tolerance: float = typer.Option(0.01, help="largest AUC drop vs PyTorch that passes the gate"),
    accept_accuracy_drop: bool = typer.Option(False, help="keep the bundle even when the AUC drop exceeds the tolerance"),
    tune_video: Optional[Path] = typer.Option(None, help="labelled footage for NNCF's AUC-driven accuracy control (OpenVINO INT8); keep it apart from --val-video so the gate stays independent"),
    tune_labels: Optional[Path] = typer.Option(None, help="per-frame labels of --tune-video (.npy or .txt)"),
    threads: Optional[int] = None,
):
    """Export, quantize, verify against PyTorch on real frames (parity + AUC gate), write a bundle."""
    from converters import convert as run_convert
    from edge_vad.profiles import load_profile

    prof = load_profile(profile) if profile else None
    target = target or (prof.target if prof else "cpu")
    if prof and target == prof.target:
        precision = precision or prof.precision
    run_convert(ckpt, target, out, precision=precision, calib_data=calib_data, threads=threads or (prof.threads if prof else None),
                val_video=val_video, val_labels=val_labels, auc_tolerance=auc_tolerance,
                accept_accuracy_drop=accept_accuracy_drop, profile=prof, tune_video=tune_video, tune_labels=tune_labels)


profiles_app = typer.Typer(help="Device profiles (profiles/*.yaml).", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
def profiles_list():
    """List the built-in device profiles."""
    from edge_vad.profiles import list_profiles, load_profile

    for name in list_profiles():
        p = load_profile(name)
        typer.echo(f"{name:18s} {p.target:13s} {p.precision:5s} {p.description}")


@profiles_app.command("show")
def profiles_show(name: str = typer.Argument(..., help="profile name or path to a YAML")):
    """Validate and print one profile with every field (defaults filled in)."""
    import yaml

    from edge_vad.profiles import load_profile

    typer.echo(yaml.safe_dump(load_profile(name).model_dump(), sort_keys=False).rstrip())


@app.command("build-engine")
def build_engine_cmd(
    bundle: Path = typer.Argument(..., help="bundle converted for a TensorRT target (jetson, tensorrt)"),
    profile: Optional[str] = typer.Option(None, help="device profile: max cameras, workspace, DLA core (written into the bundle's build plan)"),
    cache_dir: Optional[Path] = typer.Option(None, help="engine folder (default: $EDGE_VAD_CACHE/tensorrt, else /var/cache/edge-vad/tensorrt where the service is installed, else ~/.cache/edge-vad/tensorrt)"),
):
    """Build (or find) this device's TensorRT engine for a bundle; run once on the device."""
    from edge_vad.profiles import load_profile
    from edge_vad.runtime.backends.tensorrt_engine import BuildPlan, engine_cache, find_engine, store_plan
    from edge_vad.runtime.bundle.loader import load_bundle

    b = load_bundle(bundle)
    target = b.manifest.target
    if target.backend != "tensorrt" or not target.build_plan:
        raise EdgeVadError(f"{bundle}: converted for {target.name} ({target.backend}); "
                           "only TensorRT bundles (--target jetson/tensorrt) have an engine to build")
    plan = BuildPlan.load(b.root / target.build_plan)
    if profile:
        plan = plan.for_profile(load_profile(profile))
        if store_plan(b.root, target.build_plan, plan):
            typer.echo(f"build plan: {plan.describe()}; written into {b.root / target.build_plan}, so 'run' uses it too")
    cache, why = engine_cache(cache_dir)
    typer.echo(f"engine cache: {cache} ({why})")
    if cache_dir and Path(cache_dir) != engine_cache()[0]:
        typer.echo(f"note: 'edge-vad run' looks in {engine_cache()[0]}, not here")
    typer.echo(f"engine: {find_engine(plan, cache, bundle_root=b.root, log=typer.echo, device=target.device)}")


@app.command()
def package(
    bundle: Path = typer.Argument(..., help="bundle directory"),
    profile: str = typer.Option(..., help="device profile name or YAML"),
    out: Path = typer.Option(..., help="archive to write, e.g. deploy.tar.gz"),
):
    """Bundle + profile + the device's firmware configs + install.sh, in one archive."""
    from converters.package import package as run_package

    run_package(bundle, profile, out, log=typer.echo)


@app.command()
def bench(
    model: List[Path] = typer.Argument(..., help="checkpoint directory (converted to every target here) or a bundle; "
                                                 "with --speed, one or more checkpoint directories"),
    speed: bool = typer.Option(False, "--speed", help="reference (torch eager, full clip) vs runtime per backend, "
                                                     "FLOPs vs a measured matmul limit, peak memory, 1-8 cameras; docs/performance.md"),
    profile: Optional[str] = typer.Option(None, help="bench only this profile's target and precision"),
    target: Optional[List[str]] = typer.Option(None, "--target", "--targets", help="targets to try (default: all; --speed: cpu, openvino-cpu, cuda, tensorrt)"),
    precision: Optional[List[str]] = typer.Option(None, help="precisions to try (default: each target's)"),
    val_video: Optional[Path] = typer.Option(None, help="labelled video for the AUC column (and timing)"),
    val_labels: Optional[Path] = typer.Option(None, help="labels of --val-video"),
    calib_data: Optional[Path] = typer.Option(None, help="normal footage for INT8 calibration"),
    out: Path = typer.Option(Path("bench-bundles"), help="where the converted bundles go"),
    frames: int = typer.Option(60, help="frames timed per target (--speed: per path, after warm-up)"),
    threads: Optional[int] = typer.Option(None, help="threads for every engine (default: the engine's; --speed: 2)"),
    ops: bool = typer.Option(False, "--ops", help="with a bundle: also print where its model call's time goes, "
                                                  "operator by operator (the engine's own profiler)"),
):
    """Convert to every target available on this machine; print target | precision | status | size | AUC | ms | FPS."""
    from edge_vad.benchmarking.bench import Row, bench as run_bench, format_table, time_bundle
    from edge_vad.runtime.bundle.manifest import MANIFEST

    if speed:
        from edge_vad.benchmarking.speed import speed as run_speed

        if profile or precision or val_labels or ops:
            raise EdgeVadError("--speed takes checkpoints, --targets, --threads, --frames, --out and --val-video only "
                               "(its report has the operator profile already)")
        report = run_speed(model, target, threads or 2, frames, val_video or calib_data, out_dir=out,
                           log=lambda m: typer.echo(m, err=True))
        typer.echo(report.format())
        return
    if len(model) != 1:
        raise EdgeVadError(f"bench takes one checkpoint or bundle (got {len(model)}); several only with --speed")
    model = model[0]
    if ops and not (model / MANIFEST).exists():
        raise EdgeVadError(f"{model}: --ops profiles a bundle; convert the checkpoint first ('edge-vad convert') "
                           "or use 'edge-vad bench --speed', whose report has the profile of every target")
    if (model / MANIFEST).exists():
        from edge_vad.runtime.bundle.loader import load_bundle

        b = load_bundle(model)
        video = val_video or calib_data
        if video is None:
            raise EdgeVadError("bench of a bundle needs footage to time on: pass --val-video or --calib-data")
        auc = None
        if val_video and val_labels:
            from edge_vad.evaluation.evaluate import evaluate
            from edge_vad.evaluation.scorers import score_bundle
            from converters.accuracy import read_val_labels

            auc = evaluate(score_bundle(model, val_video, threads=threads), read_val_labels(val_video, val_labels))["auc_stream"]
        size = sum((model / f).stat().st_size for f in b.manifest.files) / 1e6
        ms, profile_ops = time_bundle(model, video, frames, threads, ops=ops)
        rows = [Row(b.manifest.target.name, b.manifest.target.precision, "ok", size, auc, ms)]
        if ops:
            from edge_vad.benchmarking.op_profile import OpProfile

            typer.echo(format_table(rows))
            if "error" in profile_ops:
                raise EdgeVadError(f"{model}: operator profile failed ({profile_ops['error']})")
            typer.echo("\nWhere the model call's time goes (the engine's own profiler, the same frames replayed):")
            typer.echo(OpProfile.from_dict(profile_ops).table())
            return
    else:
        if profile:
            from edge_vad.profiles import load_profile

            p = load_profile(profile)
            target, precision, threads = [p.target], [p.precision], threads or p.threads
        rows = run_bench(model, out, target, precision, val_video, val_labels, calib_data, threads, frames, log=lambda *a: None)
    typer.echo(format_table(rows))


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="device config (YAML); see firmware_configs/daemon/"),
    bundle: Optional[Path] = typer.Option(None, help="bundle directory from 'edge-vad convert' (one camera, no --config)"),
    source: Optional[str] = typer.Option(None, help="video file, /dev/videoN or index, rtsp:// URL, GStreamer pipeline, picamera2"),
    camera_id: str = typer.Option("cam0", help="camera name used in topics and events"),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix"),
    device_id: Optional[str] = typer.Option(None, help="device name in topics (default: hostname)"),
    state_dir: Path = typer.Option(Path("edge-vad-state"), help="outbox, state snapshots and stats (no --config)"),
    threads: Optional[int] = None,
    verbose: bool = False,
):
    """Score cameras with bundles and publish anomaly events over MQTT (runs until the sources end or SIGTERM)."""
    from edge_vad.runtime.daemon.config import config_from_flags, load_config
    from edge_vad.runtime.daemon.scheduler import Daemon, setup_logging

    if config is not None:
        if bundle is not None or source is not None:
            raise EdgeVadError("--config describes the cameras; leave out --bundle and --source")
        cfg = load_config(config)
    elif bundle is None or source is None:
        raise EdgeVadError("give --config DEVICE.yaml, or --bundle and --source for a single camera")
    else:
        cfg = config_from_flags(bundle, source, camera_id, broker, topic_prefix, device_id, state_dir, threads)
    setup_logging(verbose, cfg.log_format)
    daemon = Daemon(cfg)
    summaries = daemon.run()
    for name, summary in summaries.items():
        starts = sum(e["type"] == "start" for e in summary.events)
        typer.echo(f"{name}: {summary.frames} frames at {summary.fps:.1f} fps, {starts} events, "
                   f"{len(summary.events)} messages")
    waiting = daemon.outbox_depth_at_exit
    typer.echo("all messages acknowledged by the broker" if not waiting else
               f"{waiting} message(s) not yet acknowledged; they are kept in {cfg.state.dir} for the next run")


config_app = typer.Typer(help="Device configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("validate")
def config_validate(file: Path = typer.Argument(..., help="device config (YAML)")):
    """Check a device config: every error with its YAML line and camera; bundles and profiles too."""
    from edge_vad.runtime.daemon.config import validate_file

    cfg = validate_file(file)
    typer.echo(f"{file}: OK (device {cfg.device_id}, {len(cfg.cameras)} camera(s): "
               f"{', '.join(c.name for c in cfg.cameras)})")


@app.command()
def status(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="device config: read its state dir"),
    state_dir: Optional[Path] = typer.Option(None, help="the daemon's state dir"),
    broker: Optional[str] = typer.Option(None, help="read the retained stats from this broker instead"),
    device: Optional[str] = typer.Option(None, help="device id (with --broker)"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix (with --broker)"),
    as_json: bool = typer.Option(False, "--json", help="print the raw stats JSON"),
):
    """Show what a daemon is doing: fps, skips, latency, outbox depth, broker and camera state."""
    from edge_vad.runtime.daemon.status import format_status, read_stats

    stats = read_stats(config=config, state_dir=state_dir, broker=broker, device=device, prefix=topic_prefix)
    typer.echo(json.dumps(stats, indent=2) if as_json else format_status(stats))


@app.command()
def listen(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix"),
    device: str = typer.Option("+", help="device to follow (+ for all)"),
    camera: str = typer.Option("+", help="camera to follow (+ for all)"),
    count: Optional[int] = typer.Option(None, help="exit after this many events"),
    timeout: Optional[float] = typer.Option(None, help="exit after this many seconds"),
    snapshots: Optional[Path] = typer.Option(None, help="save event snapshots (JPEG) into this folder"),
):
    """Print alerts as they arrive (duplicates dropped by message id); optionally save their snapshots."""
    from edge_vad.runtime.alerts.listen import listen as run_listen

    run_listen(broker, prefix=topic_prefix, device=device, camera=camera, max_events=count, timeout=timeout,
               snapshot_dir=snapshots)


@app.command("make-testset")
def make_testset_cmd(
    video: Path = typer.Option(Path("../shared/data/vtest.avi"), help="source footage"),
    out: Path = typer.Option(..., help="output folder"),
    start: int = typer.Option(480, help="first frame (frames before 480 are training data)"),
    stop: int = typer.Option(795, help="end frame (exclusive)"),
    seed: int = 0,
    validation: bool = typer.Option(False, help="cut a validation set from the training range instead (e.g. --start 0 --stop 480 --seed 1)"),
):
    """Build the labelled anomaly test set from vtest frames 480–794."""
    from edge_vad.data.testset import make_testset

    paths = make_testset(video, out, start=start, stop=stop, seed=seed, validation=validation)
    for k, v in paths.items():
        typer.echo(f"{k:8s} {v}")


@app.command()
def demo(
    # hf2vad: the shipped bundle with the best streaming AUC on the test set (docs/results.md).
    model: str = typer.Option("hf2vad", help="model whose shipped edge bundle to run"),
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
