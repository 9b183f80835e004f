"""The ``edge-vad`` command line: train, eval, convert, run, listen, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from edge_vad import __version__
from edge_vad.errors import EdgeVadError, MissingDependency, require
from edge_vad.runtime.daemon import exit_codes

PROG = "edge-vad"
app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
RUN_STATE_DIR = Path("edge-vad-state")  # `run`'s state dir without --config, where bare `status` looks


def _print_version(value: bool):
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="print the version and exit")):
    """Video anomaly detection from research models to cameras."""


def _echo_json(doc) -> None:
    """``--json``: one JSON document on stdout (logs and progress go to stderr)."""
    typer.echo(json.dumps(doc, indent=2, default=str))


def _frame_range(value: str | None) -> str | None:
    """``--frames START:STOP``: checked here, before any work, so the message names the flag."""
    if value is None:
        return None
    parts = value.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise EdgeVadError(f"--frames {value!r}: expected START:STOP (frame numbers, STOP exclusive), e.g. 0:480") from None
    _check_range("--frames {}:{}", start, stop)
    return value


def _check_range(form: str, start: int | None, stop: int | None) -> None:
    """A frame range's flags as ``form`` writes them ("--frames {}:{}"): not negative, not empty."""
    shown = form.format("" if start is None else start, "" if stop is None else stop)
    if (start or 0) < 0 or (stop or 0) < 0:
        raise EdgeVadError(f"{shown}: frame numbers start at 0")
    if start is not None and stop is not None and stop <= start:
        raise EdgeVadError(f"{shown}: the range is empty (STOP is excluded and must be greater than START)"
                           + (f"; did you mean {form.format(stop, start)}?" if stop < start else ""))


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
def models_cmd(as_json: bool = typer.Option(False, "--json", help="print one JSON document")):
    """List the registered models and their presets."""
    from edge_vad.models import entries

    from edge_vad import pretrained

    measured = pretrained.numbers()
    shipped = pretrained.names()
    if as_json:
        _echo_json([{"name": e.name, "summary": e.summary, "paper": e.paper, "default_preset": e.default_preset,
                     "presets": e.presets,
                     "pretrained": [{"name": n, **measured.get(n, {})} for n in shipped if n.startswith(e.name + "-")]}
                    for e in entries()])
        return
    for e in entries():
        # Square models give "size"; non-square ones (hf2vad keeps the camera's aspect) height × width.
        presets = ", ".join(f"{p} ({c['size']}px)" if "size" in c else f"{p} ({c['height']}×{c['width']}px)"
                            if "height" in c else p for p, c in e.presets.items())
        typer.echo(f"{e.name:12s} {e.summary}\n{'':12s} presets: {presets}")
    if shipped:
        typer.echo("\npre-trained (use the name wherever a checkpoint or bundle path is asked for):")
        for n in shipped:
            m = measured.get(n, {})
            facts = "; ".join(f"{k} {v}" for k, v in m.get("headline", {}).items()) or "not measured"
            typer.echo(f"  {n:18s} {facts}")


@app.command()
def train(
    model: str = typer.Option(..., help="registered model name (see 'edge-vad models')"),
    data: Path = typer.Option(..., help="normal training video or image folder"),
    out: Path = typer.Option(..., help="checkpoint directory (resumes if it exists)"),
    preset: str = typer.Option("edge", help="model preset: paper or edge"),
    frames: Optional[str] = typer.Option(None, metavar="START:STOP", callback=_frame_range,
                                         help="frame range of the training video, e.g. 0:480"),
    epochs: Optional[int] = typer.Option(None, min=1, help="override the preset's epoch count"),
    holdout: float = typer.Option(0.25, help="fraction of frames held out (3 blocks spread over the range) to calibrate the score"),
    target_far: float = typer.Option(0.01, help="false-alarm rate the threshold is set for"),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="override a preset option"),
    seed: int = 0,
    threads: Optional[int] = typer.Option(None, min=1, help="torch CPU threads"),
):
    """Train a model on normal footage; weights in safetensors, config in JSON."""
    from edge_vad.training.trainer import train as run_train

    run_train(model, preset, data, out, frames=frames, holdout=holdout, epochs=epochs,
              overrides=_parse_sets(set_), seed=seed, threads=threads, target_far=target_far)


@app.command()
def calibrate(
    ckpt: Path = typer.Argument(..., help="checkpoint directory"),
    data: Optional[Path] = typer.Option(None, help="normal footage (default: the checkpoint's held-out frames)"),
    frames: Optional[str] = typer.Option(None, metavar="START:STOP", callback=_frame_range, help="frame range of --data"),
    target_far: float = typer.Option(0.01, help="false-alarm rate the threshold is set for"),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="change a score_* option (saved)"),
):
    """Fit the streaming score and threshold on normal footage (e.g. from the target camera)."""
    from edge_vad.training.trainer import calibrate_checkpoint

    calibrate_checkpoint(ckpt, data, frames, target_far, overrides=_parse_sets(set_))


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help="checkpoint directory, bundle directory, a pre-trained name "
                                          "(e.g. hf2vad-edge: its bundle), or 'framediff'"),
    video: Optional[Path] = typer.Option(None, help="test video or image folder (with --labels)"),
    labels: Optional[Path] = typer.Option(None, help="per-frame labels (.npy or .txt, 0 normal / 1 anomalous)"),
    testset: Optional[Path] = typer.Option(None, help="a test set from 'edge-vad make-testset': every clip, its "
                                                      "counterfactual and the normal soak (events, not only AUC)"),
    calib_data: Optional[Path] = typer.Option(None, help="framediff: normal footage to fit its threshold on"),
    calib_frames: Optional[str] = typer.Option(None, help="framediff: frame range START:STOP of --calib-data"),
    alerts_per_hour: float = typer.Option(1.0, help="framediff: the alert budget its threshold is fitted to"),
    conditioning: bool = typer.Option(True, "--conditioning/--no-conditioning",
                                      help="undo shake and light changes first, as the runtime does"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    report: Optional[Path] = typer.Option(None, help="write ROC, timeline and alert plots (PNG) here"),
    threads: Optional[int] = typer.Option(None, min=1),
):
    """What a user would receive: events (which anomalies caused one, delay, false events per hour, time in
    alarm) and frame-level AUC (streaming and offline protocols), on a labelled video or a whole test set."""
    from edge_vad.evaluation.scorers import FRAMEDIFF
    from edge_vad.pretrained import resolve

    if model != FRAMEDIFF:
        model = str(resolve(model, "any"))
    if (video is None) != (labels is None):
        raise EdgeVadError("--video and --labels go together")
    if (video is None) == (testset is None):
        raise EdgeVadError("give --video VIDEO --labels LABELS, or --testset DIR")
    threshold = None
    if model == FRAMEDIFF and calib_data is None and testset is not None:
        raise EdgeVadError("framediff has no calibration of its own: pass --calib-data NORMAL_VIDEO "
                           "(and --calib-frames, e.g. 0:480) to fit the threshold its events are counted at")
    if model == FRAMEDIFF and calib_data is not None:
        from edge_vad.data.frames import parse_range, video_info
        from edge_vad.evaluation.alerts import framediff_threshold

        info = video_info(calib_data)
        threshold, _ = framediff_threshold(calib_data, parse_range(calib_frames, info.frames), info.fps,
                                           alerts_per_hour, conditioning=conditioning)
    if testset is not None:
        from edge_vad.evaluation.alerts import evaluate_testset, format_testset

        result = evaluate_testset(model, testset, threads=threads, conditioning=conditioning, threshold=threshold,
                                  progress=lambda message: typer.echo(f"scoring {message}", err=True))
        if report:
            from edge_vad.evaluation.report import write_alert_timelines

            result["report"] = [str(p) for p in write_alert_timelines(result, report)]
        if not report:
            result.pop("series", None)
        typer.echo(json.dumps(result) if as_json else format_testset(result))
        return
    from edge_vad.data.frames import video_info
    from edge_vad.data.labels import load_labels
    from edge_vad.evaluation.alerts import events_on_labels
    from edge_vad.evaluation.evaluate import evaluate, format_result
    from edge_vad.evaluation.scorers import score_any

    y = load_labels(labels, video_info(video).frames)
    scores = score_any(model, video, threads=threads, conditioning=conditioning)
    if threshold is not None:
        scores.threshold = threshold
    result = evaluate(scores, y)
    if scores.threshold is not None:
        result["events"] = events_on_labels(scores.stream, scores.threshold, y, video_info(video).fps)
    if report:
        from edge_vad.evaluation.report import write_report

        result["report"] = [str(p) for p in write_report(scores, y, result, report, video=video)]
    typer.echo(json.dumps(result) if as_json else format_result(result))


@app.command()
def convert(
    ckpt: Path = typer.Argument(..., help="checkpoint directory from 'edge-vad train', or a pre-trained name "
                                          "(e.g. stconvlstm-edge; see 'edge-vad models')"),
    out: Path = typer.Option(..., help="bundle directory to write"),
    target: Optional[str] = typer.Option(None, metavar="TARGET", help="deployment target: cpu, cuda, cuda-trt, openvino-cpu/gpu/npu, jetson, tensorrt (default: the profile's, else cpu)"),
    precision: Optional[str] = typer.Option(None, metavar="fp32|fp16|int8|bf16", help="bf16 on openvino-cpu where the CPU has native bf16; default: the profile's, else the target's first"),
    profile: Optional[str] = typer.Option(None, help="device profile name or YAML (see 'edge-vad profiles list')"),
    calib_data: Optional[Path] = typer.Option(None, help="normal footage (video or image folder) to calibrate INT8 and verify on"),
    val_video: Optional[Path] = typer.Option(None, help="labelled test video for the AUC gate"),
    val_labels: Optional[Path] = typer.Option(None, help="per-frame labels of --val-video (.npy or .txt)"),
    auc_tolerance: float = typer.Option(0.01, help="largest AUC drop vs PyTorch that passes the gate"),
    accept_accuracy_drop: bool = typer.Option(False, "--accept-accuracy-drop", help="keep the bundle even when the AUC drop exceeds the tolerance"),
    tune_video: Optional[Path] = typer.Option(None, help="labelled footage for NNCF's AUC-driven accuracy control (OpenVINO INT8); keep it apart from --val-video so the gate stays independent"),
    tune_labels: Optional[Path] = typer.Option(None, help="per-frame labels of --tune-video (.npy or .txt)"),
    int8_weights: str = typer.Option("auto", metavar="auto|7-bit|8-bit", help="INT8 weight range: auto (what this machine's CPU takes: 7-bit without VNNI, 8-bit with it), or forced for a device whose CPU differs from this one's"),
    threads: Optional[int] = typer.Option(None, min=1),
):
    """Export, quantize, verify against PyTorch on real frames (parity + AUC gate), write a bundle."""
    from converters import convert as run_convert
    from converters.targets import get_target
    from edge_vad.profiles import load_profile
    from edge_vad.progress import StageProgress

    from edge_vad.pretrained import resolve

    ckpt = resolve(ckpt, "checkpoint")
    prof = load_profile(profile) if profile else None
    target = target or (prof.target if prof else "cpu")
    if prof and target == prof.target:
        precision = precision or prof.precision
    tgt, resolved = get_target(target, precision)
    if tgt.backend == "openvino":  # before minutes of export: the conversion itself needs OpenVINO (and NNCF)
        require("openvino", "openvino", f"edge-vad convert --target {tgt.name}")
        if resolved == "int8":
            require("nncf", "openvino", f"edge-vad convert --target {tgt.name} --precision int8")
    with StageProgress("convert") as progress:
        run_convert(ckpt, target, out, precision=precision, calib_data=calib_data,
                    threads=threads or (prof.threads if prof else None), val_video=val_video, val_labels=val_labels,
                    auc_tolerance=auc_tolerance, accept_accuracy_drop=accept_accuracy_drop, profile=prof,
                    tune_video=tune_video, tune_labels=tune_labels, int8_weights=int8_weights,
                    log=progress.stage)


profiles_app = typer.Typer(help="Device profiles (profiles/*.yaml).", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
def profiles_list(as_json: bool = typer.Option(False, "--json", help="print one JSON document (every field)")):
    """List the built-in device profiles."""
    from edge_vad.profiles import list_profiles, load_profile

    profiles = [load_profile(name) for name in list_profiles()]
    if as_json:
        _echo_json([p.model_dump() for p in profiles])
        return
    for p in profiles:
        typer.echo(f"{p.name:18s} {p.target:13s} {p.precision:5s} {p.description}")


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

    from edge_vad.pretrained import resolve

    bundle = resolve(bundle, "bundle")
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
    # The plan and the cache need no TensorRT (a profile is written on any machine); the engine does.
    require("tensorrt", "tensorrt", "edge-vad build-engine")
    typer.echo(f"engine: {find_engine(plan, cache, bundle_root=b.root, log=typer.echo, device=target.device)}")


@app.command()
def package(
    bundle: Path = typer.Argument(..., help="bundle directory"),
    profile: str = typer.Option(..., help="device profile name or YAML"),
    out: Path = typer.Option(..., help="archive to write, e.g. deploy.tar.gz"),
):
    """Bundle + profile + the device's firmware configs + install.sh, in one archive."""
    from converters.package import package as run_package
    from edge_vad.pretrained import resolve

    run_package(resolve(bundle, "bundle"), profile, out, log=typer.echo)


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
    frames: int = typer.Option(60, min=1, help="frames timed per target (--speed: per path, after warm-up)"),
    threads: Optional[int] = typer.Option(None, min=1, help="threads for every engine (default: the engine's; --speed: 2)"),
    ops: bool = typer.Option(False, "--ops", help="with a bundle: also print where its model call's time goes, "
                                                  "operator by operator (the engine's own profiler)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document (rows, and the operator profile)"),
):
    """Convert to every target available on this machine; print target | precision | status | size | AUC | ms | FPS."""
    from edge_vad.benchmarking.bench import Row, bench as run_bench, format_table, time_bundle
    from edge_vad.pretrained import resolve
    from edge_vad.runtime.bundle.manifest import MANIFEST

    # A pre-trained name is its checkpoint: bench converts it to every target here.
    model = [resolve(m, "checkpoint") for m in model]
    if speed:
        from edge_vad.benchmarking.speed import speed as run_speed

        if profile or precision or val_labels or ops:
            raise EdgeVadError("--speed takes checkpoints, --targets, --threads, --frames, --out and --val-video only "
                               "(its report has the operator profile already)")
        report = run_speed(model, target, threads or 2, frames, val_video or calib_data, out_dir=out,
                           log=lambda m: typer.echo(m, err=True))
        if as_json:
            import dataclasses

            _echo_json(dataclasses.asdict(report))
        else:
            typer.echo(report.format())
        return
    if len(model) != 1:
        raise EdgeVadError(f"bench takes one checkpoint or bundle (got {len(model)}); several only with --speed")
    model = model[0]
    if ops and not (model / MANIFEST).exists():
        raise EdgeVadError(f"{model}: --ops profiles a bundle; convert the checkpoint first ('edge-vad convert') "
                           "or use 'edge-vad bench --speed', whose report has the profile of every target")
    op_profile = None
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

            if "error" in profile_ops:
                if not as_json:
                    typer.echo(format_table(rows))
                raise EdgeVadError(f"{model}: operator profile failed ({profile_ops['error']})")
            op_profile = OpProfile.from_dict(profile_ops)
    else:
        if profile:
            from edge_vad.profiles import load_profile

            p = load_profile(profile)
            target, precision, threads = [p.target], [p.precision], threads or p.threads
        rows = run_bench(model, out, target, precision, val_video, val_labels, calib_data, threads, frames, log=lambda *a: None)
    if as_json:
        _echo_json({"rows": [r.to_dict() for r in rows], **({"ops": op_profile.to_dict()} if op_profile else {})})
        return
    typer.echo(format_table(rows))
    if op_profile:
        typer.echo("\nWhere the model call's time goes (the engine's own profiler, the same frames replayed):")
        typer.echo(op_profile.table())


def _require_source_extras(cfg) -> None:
    """A source that needs an extra is reported before the daemon starts, not from its capture thread."""
    from edge_vad.runtime.capture.sources import describe_source

    for cam in cfg.cameras:
        if describe_source(cam.source) == "picamera2":
            require("picamera2", "picamera", f"camera {cam.name} (source {cam.source})")


@app.command(epilog=exit_codes.HELP)
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="device config (YAML); see firmware_configs/daemon/"),
    bundle: Optional[Path] = typer.Option(None, help="bundle directory from 'edge-vad convert' (one camera, no --config)"),
    source: Optional[str] = typer.Option(None, help="video file, /dev/videoN or index, rtsp:// URL, GStreamer pipeline, picamera2"),
    camera_id: str = typer.Option("cam0", help="camera name used in topics and events"),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix"),
    device_id: Optional[str] = typer.Option(None, help="device name in topics (default: hostname)"),
    state_dir: Path = typer.Option(RUN_STATE_DIR, help="outbox, state snapshots and stats (no --config)"),
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
        from edge_vad.pretrained import resolve

        cfg = config_from_flags(resolve(bundle, "bundle"), source, camera_id, broker, topic_prefix, device_id,
                                state_dir, threads)
    _require_source_extras(cfg)
    setup_logging(verbose, cfg.log_format)
    daemon = Daemon(cfg)
    summaries = daemon.run()
    for name, summary in summaries.items():
        starts = sum(e["type"] == "start" for e in summary.events)
        typer.echo(f"{name}: {summary.frames} frames at {summary.fps:.1f} fps, {starts} events, "
                   f"{len(summary.events)} messages")
    code, lines = daemon.outcome()
    for line in lines:
        typer.echo(line, err=code != exit_codes.OK)
    raise typer.Exit(code)


config_app = typer.Typer(help="Device configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("validate")
def config_validate(file: Path = typer.Argument(..., help="device config (YAML)"),
                    as_json: bool = typer.Option(False, "--json", help="print one JSON document: ok, errors, cameras")):
    """Check a device config: every error with its YAML line and camera; bundles and profiles too."""
    from edge_vad.runtime.daemon.config import config_warnings, validate_file

    try:
        cfg = validate_file(file)
    except EdgeVadError as exc:
        if not as_json:
            raise
        # "FILE: N error(s)" then one indented line per error; a single problem is the whole message.
        lines = str(exc).splitlines()
        _echo_json({"file": str(file), "ok": False,
                    "errors": [line.strip() for line in lines[1:] if line.startswith("  ")] or [str(exc)]})
        raise typer.Exit(2)
    warnings = config_warnings(cfg)
    if as_json:
        _echo_json({"file": str(file), "ok": True, "warnings": warnings, "device_id": cfg.device_id,
                    "cameras": [{"name": c.name, "source": c.source, "bundle": str(c.bundle), "profile": c.profile}
                                for c in cfg.cameras]})
        return
    for warning in warnings:
        typer.secho(f"warning: {file}: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{file}: OK (device {cfg.device_id}, {len(cfg.cameras)} camera(s): "
               f"{', '.join(c.name for c in cfg.cameras)})")


@app.command()
def status(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="device config: read its state dir"),
    state_dir: Optional[Path] = typer.Option(None, help=f"the daemon's state dir (default: {RUN_STATE_DIR}, "
                                                        "where 'edge-vad run' keeps it without --config)"),
    broker: Optional[str] = typer.Option(None, help="read the retained stats from this broker instead"),
    device: Optional[str] = typer.Option(None, help="device id (with --broker)"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix (with --broker)"),
    as_json: bool = typer.Option(False, "--json", help="print the raw stats JSON"),
):
    """Show what a daemon is doing: fps, skips, latency, outbox depth, broker and camera state."""
    from edge_vad.runtime.daemon.status import format_status, read_stats

    if config is None and state_dir is None and broker is None:
        state_dir = RUN_STATE_DIR
    stats = read_stats(config=config, state_dir=state_dir, broker=broker, device=device, prefix=topic_prefix)
    typer.echo(json.dumps(stats, indent=2) if as_json else format_status(stats))


@app.command()
def listen(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL"),
    topic_prefix: str = typer.Option("edge-vad", help="topic prefix"),
    device: str = typer.Option("+", help="device to follow (+ for all)"),
    camera: str = typer.Option("+", help="camera to follow (+ for all)"),
    count: Optional[int] = typer.Option(None, min=1, help="exit after this many events"),
    timeout: Optional[float] = typer.Option(None, min=0, help="exit after this many seconds"),
    snapshots: Optional[Path] = typer.Option(None, help="save event snapshots (JPEG) into this folder"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document per line: each event as published"),
):
    """Print alerts as they arrive (duplicates dropped by message id); optionally save their snapshots."""
    from edge_vad.runtime.alerts.listen import listen as run_listen

    # A stream has no end to wait for, so --json is JSON Lines: one event object per line, as it arrives.
    run_listen(broker, prefix=topic_prefix, device=device, camera=camera, max_events=count, timeout=timeout,
               snapshot_dir=snapshots, out=None if as_json else sys.stdout,
               on_event=(lambda event: typer.echo(json.dumps(event))) if as_json else None)


@app.command("make-testset")
def make_testset_cmd(
    video: Path = typer.Option(Path("../shared/data/vtest.avi"), help="source footage"),
    out: Path = typer.Option(..., help="output folder"),
    start: int = typer.Option(480, help="first frame (frames before 480 are training data)"),
    stop: int = typer.Option(795, help="end frame (exclusive)"),
    seed: int = 0,
    validation: bool = typer.Option(False, "--validation", help="cut a validation set from the training range instead (e.g. --start 0 --stop 480 --seed 1)"),
    parts: str = typer.Option("moving,still,soak", help="what to build: moving (fast movers + counterfactual), still (appearance and stillness), soak (normal footage with a camera's changes)"),
    soak_minutes: float = typer.Option(10.0, help="length of the randomized normal soak stream (0: none)"),
):
    """Build the labelled test set from vtest frames 480–794: anomalies, their counterfactuals, normal soak."""
    from edge_vad.data.testset import make_testset

    _check_range("--start {} --stop {}", start, stop)
    paths = make_testset(video, out, start=start, stop=stop, seed=seed, validation=validation,
                         parts=tuple(p.strip() for p in parts.split(",") if p.strip()), soak_minutes=soak_minutes,
                         progress=lambda message: typer.echo(f"building {message}", err=True))
    for k, v in paths.items():
        typer.echo(f"{k:18s} {v}")


@app.command()
def demo(
    # hf2vad: the shipped bundle with the best streaming AUC on the test set (docs/results.md).
    model: str = typer.Option("hf2vad", help="model whose shipped edge bundle to run"),
    broker: Optional[str] = typer.Option(None, help="MQTT broker URL (default: an embedded broker)"),
    out: Path = typer.Option(Path("edge-vad-demo"), help="where the report goes"),
    threads: Optional[int] = typer.Option(None, min=1),
):
    """The whole path on embedded defaults: clip → model → events over MQTT → report."""
    from edge_vad.demo import run_demo

    run_demo(model, broker, out, threads=threads)


def _label_types(command) -> None:
    """Recent typer labels values ``<str>``, ``<path>`` and flags ``<bool>``: name them (TEXT, PATH, INTEGER) and
    leave flags bare, as click does. Parameters without typer's type descriptor (older typer) are left alone."""
    names = {int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH"}

    def label(annotation) -> str:
        args = getattr(annotation, "__args__", None)  # list[Path] -> Path
        return names.get(args[0] if args else annotation, "VALUE") + ("..." if args else "")

    for param in command.params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx, text=label(descriptor.annotation): text
        else:
            param.metavar = "" if getattr(param, "is_flag", False) else label(descriptor.annotation)
    get_help_option = command.get_help_option

    def help_option(ctx):
        option = get_help_option(ctx)
        if option is not None and hasattr(option, "type_descriptor"):
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _label_types(sub)


def _command_of(argv: list[str]) -> str:
    """'edge-vad profiles list' from the command line, for messages about the command."""
    import typer.main

    words, group = [PROG], typer.main.get_command(app)
    for arg in argv:
        sub = getattr(group, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        group = sub
    return " ".join(words)


def main() -> None:
    import typer.main

    try:
        import typer.rich_utils as rich_help
    except ImportError:  # typer without rich: click's plain help
        rich_help = None
    if rich_help is not None and not sys.stdout.isatty() and not getattr(rich_help, "MAX_WIDTH", None):
        rich_help.MAX_WIDTH = 120  # piped help (| less, a file) is not cut at rich's 80-column guess
    command = typer.main.get_command(app)
    _label_types(command)
    try:
        command(prog_name=PROG)
    except EdgeVadError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(getattr(exc, "exit_code", exit_codes.USAGE))
    except ImportError as exc:
        # An optional extra that is not installed, wherever its import happens: one line, the install command.
        from edge_vad.extras import extra_of

        extra = extra_of(exc.name)
        if extra is None:
            raise
        missing = MissingDependency(exc.name.split(".")[0], extra, _command_of(sys.argv[1:]))
        typer.secho(f"error: {missing}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
