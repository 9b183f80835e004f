"""``edge-vad convert``: checkpoint → ONNX step graph → target graph → accuracy gate → bundle."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from converters.accuracy import DEFAULT_AUC_TOLERANCE, auc_gate
from converters.calib_data import load_calib_frames, stream_samples
from converters.targets import Target, get_target
from edge_vad import __version__
from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.preprocess import preprocess_many
from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends import create_backend
from edge_vad.runtime.backends.cpu_isa import cpu_isa
from edge_vad.runtime.bundle.loader import Bundle, load_bundle, sha256_file
from edge_vad.runtime.bundle.manifest import MANIFEST, Manifest

GRAPH_FILE = "model.onnx"
VERIFY_FILE = "verify.json"
PARITY_FRAMES = 40  # scored frames, after warm-up


def demo_clip() -> Path:
    return Path(__file__).resolve().parents[1] / "edge_vad/assets/demo/vtest_anomalies_demo.avi"


def _parity_source(info: dict, calib_data: Path | None) -> tuple[Path, int, int]:
    """Real normal frames to compare on: the user's, else the checkpoint's held-out range, else the demo clip."""
    if calib_data is not None:
        n = video_info(calib_data).frames
        return Path(calib_data), 0, n
    data = info.get("data", {})
    if data.get("path") and Path(data["path"]).exists() and data.get("holdout"):
        return Path(data["path"]), *data["holdout"][0]
    clip = demo_clip()
    if not clip.exists():
        raise EdgeVadError("no frames to verify the conversion on: pass --calib-data VIDEO")
    return clip, 0, video_info(clip).frames


def _calib_frames(info: dict, calib_data: Path | None, spec, log):
    """Normal frames for INT8 ranges: --calib-data, else every held-out block of the checkpoint."""
    if calib_data is not None:
        return load_calib_frames(calib_data, spec), str(calib_data)
    data = info.get("data", {})
    if data.get("path") and Path(data["path"]).exists() and data.get("holdout"):
        blocks = [load_calib_frames(data["path"], spec, a, b, min_frames=0) for a, b in data["holdout"]]
        log(f"int8: calibrating on the checkpoint's held-out normal frames {data['holdout']} (pass --calib-data for the camera's own footage)")
        return blocks, f"{data['path']} holdout {data['holdout']}"
    raise EdgeVadError("INT8 needs normal footage to calibrate on: pass --calib-data VIDEO_OR_FOLDER")


MAX_STREAMED = 240  # frames per calibration clip an INT8 candidate is streamed over (each trial streams them)


def _samples(graph: Path, frames, state: list[dict], warmup: int) -> list[dict]:
    blocks = frames if isinstance(frames, list) else [frames]
    per = max(1, 96 // len(blocks))
    out = []
    for block in blocks:  # each block streams from zero state, as a camera starting up would
        out += stream_samples(graph, block, state, warmup, max_samples=per)
    if len(out) < 16:
        import warnings

        warnings.warn(f"only {len(out)} calibration samples after warm-up; INT8 ranges may be poor", stacklevel=2)
    return out


def _parity(model, tgt: Target, staging: Path, state: list[dict], calibration: dict, info: dict, calib_data,
            precision: str, threads, log, graph_file: str = GRAPH_FILE, fixed_shapes: bool | None = None):
    """The staged graph against PyTorch on real normal frames (``converters.parity``), with the target's verifier:
    the report, that backend (the AUC gate runs on it too), its description and the frames compared on."""
    from converters.parity import TOLERANCES, check_parity  # torch: imported here, so `import converters` needs none
    backend, verified_on = _verifier(tgt, staging, graph_file, precision, threads, log, fixed_shapes)
    src, start, stop = _parity_source(info, calib_data)
    # The frames before a held-out block warm the stream up, so the block itself is compared.
    start = max(0, start - model.warmup_frames) if calib_data is None else start
    stop = min(max(stop, start + model.warmup_frames + 12), start + model.warmup_frames + PARITY_FRAMES)
    frames = preprocess_many(list(read_frames(src, start, stop)), model.input_spec())
    if len(frames) <= model.warmup_frames + 2:
        raise EdgeVadError(f"{src}: too few frames ({len(frames)}) to verify the conversion")
    report = check_parity(
        model, backend, {"frame": "frame", "error": "error", "error_map": "error_map"},
        [(s["input"], s["output"]) for s in state], frames, calibration, TOLERANCES[precision],
    )
    log(report.summary() + f"  [{src.name} frames {start}:{stop}, {precision}]")
    return report, backend, verified_on, (src, start, stop)


def _verifier(tgt: Target, staging: Path, graph_file: str, precision: str, threads, log,
              fixed_shapes: bool | None = None):
    """Backend to verify with: the target's own when it runs here, else ONNX Runtime CPU on the shipped graph."""
    ok, why = tgt.runnable_here(precision)
    if ok and not tgt.builds_on_device:
        return create_backend(tgt.backend, staging / graph_file, providers=list(tgt.providers) or None,
                              threads=threads, device=tgt.device, cache_dir=staging.parent / ".ov-cache",
                              fixed_shapes=fixed_shapes, precision=precision,
                              inference_precision=inference_precision(tgt, precision)), tgt.name
    if tgt.backend == "openvino":
        raise EdgeVadError(f"target {tgt.name}/{precision}: cannot verify here ({why}); convert on a machine with "
                           "that device" + (", or choose fp32" if precision == "bf16" else ""))
    proxy = staging / graph_file
    note = f"onnxruntime-cpu on the shipped graph ({why or 'engine is built on the device'})"
    if tgt.builds_on_device and precision == "fp16":
        # TensorRT builds FP16 from the FP32 graph; an FP16 ONNX copy is the closest proxy runnable here.
        from converters.quantize import to_fp16

        proxy = staging.parent / f".{staging.name}-fp16-proxy.onnx"
        to_fp16(staging / graph_file, proxy)
        note = f"onnxruntime-cpu on an FP16 copy of the graph ({why or 'engine is built on the device'})"
    exact = precision == "int8"
    if exact:
        # Q/DQ left unfused: the arithmetic TensorRT and the GPU providers perform.  ORT's fused int8 CPU
        # kernels would add their own error (16-bit saturation on x86 without VNNI) to what is verified.
        note += ", QDQ evaluated unfused"
    log(f"verifying with {note}")
    return create_backend("onnxruntime", proxy, threads=threads, exact_qdq=exact), note


def inference_precision(tgt: Target, precision: str) -> str | None:
    """What the bundle's float arithmetic is compiled to run in, recorded in the manifest (engines' defaults
    vary between CPUs); None where the engine plan decides (TensorRT builds from the plan's flags)."""
    if tgt.backend == "openvino":
        from edge_vad.runtime.backends.openvino import inference_precision_for

        return inference_precision_for(tgt.device or "CPU", precision)
    if tgt.backend == "onnxruntime":
        return "f16" if precision == "fp16" else "f32"
    return None


def convert(ckpt: Path, target: str, out: Path, precision: str | None = None,
            calib_data: Path | None = None, threads: int | None = None, val_video: Path | None = None,
            val_labels: Path | None = None, auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
            accept_accuracy_drop: bool = False, profile=None, int8_keep_float: str = "auto",
            tune_video: Path | None = None, tune_labels: Path | None = None, int8_weights: str = "auto",
            log=print) -> Manifest:
    """``int8_weights``: "auto" (the range this machine's CPU kernels take, see ``cpu_isa``), "7-bit" or "8-bit"
    (for a device whose CPU differs from this one's)."""
    tgt, precision = get_target(target, precision)
    weights = tgt.int8_weights(int8_weights) if precision == "int8" else None
    if (val_video is None) != (val_labels is None):
        raise EdgeVadError("--val-video and --val-labels go together (labels are per frame of that video)")
    if (tune_video is None) != (tune_labels is None):
        raise EdgeVadError("--tune-video and --tune-labels go together (labels are per frame of that video)")
    for p, flag in ((calib_data, "--calib-data"), (val_video, "--val-video"), (val_labels, "--val-labels"),
                    (tune_video, "--tune-video"), (tune_labels, "--tune-labels")):
        if p is not None and not Path(p).exists():
            raise EdgeVadError(f"{flag} {p}: no such file or folder")
    from edge_vad.training import checkpoint as ckpt_io  # needs the train extra

    model, info = ckpt_io.load_model(Path(ckpt))
    from edge_vad.models import get_model

    entry = get_model(info["model"])
    if not entry.supports(precision):
        raise EdgeVadError(f"{info['model']} does not run in {precision} (its precisions: {', '.join(entry.precisions)}); "
                           f"choose one of them with --precision")
    calibration = ckpt_io.read_calibration(Path(ckpt))
    if calibration is None:
        raise EdgeVadError(f"{ckpt}: has no {ckpt_io.CALIBRATION}; training did not finish (run 'edge-vad train' again to resume)")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    proxy = staging.parent / f".{staging.name}-fp16-proxy.onnx"
    try:
        log(f"exporting {info['model']}/{info['preset']} step graph to ONNX (opset, simplified, dynamic batch)")
        from converters.onnx_export import export_step

        fp32 = staging / "fp32.onnx"
        graph = export_step(model, fp32)
        step = model.step_module()
        state = [
            {"input": i, "output": o, "shape": list(s.shape), "dtype": "float32", "init": s.init}
            for i, o, s in zip(step.input_names[1:], step.output_names[2:], model.state_specs())
        ]
        quant: dict = {}
        samples = probe = None
        if precision == "int8":
            import onnx

            from converters.quantize import Probe, computes_state

            frames, calib_src = _calib_frames(info, calib_data, model.input_spec(), log)
            samples = _samples(fp32, frames, state, model.warmup_frames)
            # A graph whose convolutions compute its own state is measured streaming, with that state.
            clips = None
            if computes_state(onnx.load(str(fp32)), state):
                clips = [c[:MAX_STREAMED] for c in (frames if isinstance(frames, list) else [frames])]
            probe = Probe(samples, clips, state, model.warmup_frames)
            quant["calibration_source"] = calib_src

        graph_file, graph_format, build_plan = GRAPH_FILE, "onnx", None
        if tgt.backend == "openvino":
            from converters.openvino_ir import IR_XML, convert_ir

            validate = None
            if precision == "int8" and tune_video is not None:
                # Tuned on its own labelled footage: the AUC gate below stays an independent measurement.
                validate = _ov_validator(info, calibration, graph, state, model.warmup_frames, tune_video, tune_labels,
                                         tgt.device)
                quant["accuracy_control_video"] = str(tune_video)
            if weights is not None:
                from converters.openvino_ir import int8_weights_for

                weights = int8_weights_for(weights, forced=int8_weights != "auto")
            quant.update(convert_ir(fp32, staging, precision, probe, validate, auc_tolerance,
                                    spec=model.input_spec(), device=tgt.device, int8_weights=weights or "8-bit",
                                    log=log))
            graph_file, graph_format = IR_XML, "openvino-ir"
            fp32.unlink()
        elif precision == "int8":
            from converters.quantize import to_int8

            # Measured as it will run: ORT's fused CPU kernels for the cpu target, the exact QDQ arithmetic
            # (what TensorRT and the GPU providers compute) for the others.
            def passes_parity(graph: Path) -> bool:
                return _parity(model, tgt, graph.parent, state, calibration, info, calib_data, precision, threads,
                               lambda *a: None, graph.name)[0].passed

            quant.update(to_int8(fp32, staging / GRAPH_FILE, probe, spec=model.input_spec(),
                                 keep_float=int8_keep_float, reduce_range=weights == "7-bit",
                                 exact=tgt.name != "cpu", log=log, accept=passes_parity,
                                 quantize_bias=tgt.int8_quantize_bias))
            fp32.unlink()
        elif precision == "fp16" and not tgt.builds_on_device:
            from converters.quantize import to_fp16

            to_fp16(fp32, staging / GRAPH_FILE)
            fp32.unlink()
        else:
            fp32.rename(staging / GRAPH_FILE)
        if tgt.builds_on_device:
            from converters.tensorrt_plan import write_plan

            build_plan = write_plan(staging, GRAPH_FILE, precision, state, model, profile, samples)

        files = {f.name: sha256_file(f) for f in sorted(staging.iterdir()) if f.is_file()}
        sha = files[graph_file]
        import onnx
        import onnxruntime
        import torch

        manifest = Manifest(
            bundle_id=f"{info['model']}-{info['preset']}-{tgt.name}-{precision}-{sha[:8]}",
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            model={"name": info["model"], "preset": info["preset"], "config": info["config"]},
            input=info["input"],
            graph={"file": graph_file, "format": graph_format, "opset": graph["opset"], "precision": precision,
                   "inputs": graph["inputs"], "outputs": graph["outputs"], "int8_weights": weights},
            state=state,
            warmup_frames=model.warmup_frames,
            score={"kind": "grid-z", "calibration": calibration,
                   "paper_score": getattr(model, "paper_score",
                                          "e(t) = sum over predicted frames of the L2 prediction error (graph output 'error')")},
            target={"name": tgt.name, "backend": tgt.backend, "precision": precision, "providers": list(tgt.providers),
                    "device": tgt.device, "build_plan": build_plan,
                    "inference_precision": inference_precision(tgt, precision), "verified_cpu": cpu_isa().to_dict()},
            files=files,
            producer={"edge_vad": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                      "onnxruntime": onnxruntime.__version__, **_optional_versions()},
        )

        # --- accuracy gate ---------------------------------------------------
        # OpenVINO runs a fixed-shape model per batch size when it passes (faster), else the dynamic one.
        for fixed_shapes in ([True, False] if tgt.backend == "openvino" else [None]):
            if fixed_shapes is False:
                log("the fixed-shape model fails; verifying the dynamic-batch model, which the runtime will then run")
            report, backend, verified_on, (src, start, stop) = _parity(
                model, tgt, staging, state, calibration, info, calib_data, precision, threads, log, graph_file,
                fixed_shapes)
            if report.passed:
                break
        if fixed_shapes is not None:
            manifest = manifest.model_copy(update={"graph": manifest.graph.model_copy(update={"fixed_shapes": fixed_shapes})})
        verify = {"parity": report.to_dict(), "frames_source": {"path": str(src), "start": start, "stop": stop},
                  "verified_on": verified_on, "precision": precision, "quantization": quant or None,
                  "inference_precision": getattr(backend, "effective_precision", None) or inference_precision(tgt, precision),
                  "cpu": cpu_isa().to_dict(),
                  **({"openvino_fixed_shapes": fixed_shapes} if fixed_shapes is not None else {})}
        if not report.passed:
            (staging / VERIFY_FILE).write_text(json.dumps(verify, indent=2))
            raise EdgeVadError(f"converted model disagrees with PyTorch; bundle refused.\n{report.summary()}\n"
                               f"{_parity_advice(report, tgt, precision)}")
        auc = None
        if val_video is not None:
            auc = auc_gate(Path(ckpt), Bundle(staging, manifest), backend, Path(val_video), Path(val_labels),
                           auc_tolerance, accept_accuracy_drop)
            verify["auc"] = auc.to_dict()
            log(auc.summary())
            if not auc.passed and not accept_accuracy_drop:
                raise EdgeVadError(
                    f"conversion to {tgt.name}/{precision} loses more than {auc_tolerance} AUC; bundle refused.\n"
                    f"{auc.summary()}\nUse fp32/fp16, more --calib-data, or --accept-accuracy-drop to keep it anyway."
                )
        if tgt.builds_on_device:
            log(_engine_note(tgt, staging, build_plan, log))
        (staging / VERIFY_FILE).write_text(json.dumps(verify, indent=2))

        files[VERIFY_FILE] = sha256_file(staging / VERIFY_FILE)
        manifest = manifest.model_copy(update={
            "files": files,
            "verify": {"parity_passed": report.passed, "max_score_diff": report.max_score_diff,
                       "score_correlation": report.score_correlation, "verified_on": verified_on,
                       **({"auc": auc.converted, "auc_pytorch": auc.pytorch, "auc_passed": auc.passed} if auc else {})},
        })
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        load_bundle(staging)  # the bundle must load exactly as a device will load it
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        out.chmod(0o755)  # mkdtemp made it private; a bundle is meant to be shared
        log(f"bundle written to {out} ({manifest.bundle_id})")
        return manifest
    finally:
        proxy.unlink(missing_ok=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# What to try when a conversion misses its parity limits, by precision.
_PARITY_TRIES = {
    "int8": "--precision fp16 or fp32, or more --calib-data from the camera (INT8 ranges come from those frames)",
    "fp16": "--precision fp32",
    "fp32": "another target (FP32 should match to rounding: this engine computes the graph differently; please "
            "report it with the line above)",
}


def _parity_advice(report, tgt: Target, precision: str) -> str:
    t = report.tolerance
    limits = (f"error rel <= {t['rel_error']:g}, error map <= {t['map']:g}, score delta <= {t['score']:g} sigma"
              + (f", score corr >= {t['corr']:g}" if "corr" in t else ""))
    tries = _PARITY_TRIES[precision]
    if precision == "int8" and tgt.backend == "openvino":
        tries += ", or --tune-video/--tune-labels (NNCF then keeps in float what the AUC needs)"
    return f"{tgt.name}/{precision} must stay within: {limits} (converters/parity.py). Try {tries}."


def _optional_versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("openvino", "nncf", "tensorrt", "onnxslim"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _engine_note(tgt: Target, staging: Path, build_plan: str, log) -> str:
    ok, why = tgt.runnable_here()
    if not ok:
        return (f"TensorRT engine not built here ({why}); the bundle carries the ONNX graph and {build_plan}, "
                "and the engine will be built on the device by 'edge-vad build-engine BUNDLE' or on first 'run'")
    from edge_vad.runtime.backends.tensorrt_engine import BuildPlan, find_engine

    path = find_engine(BuildPlan.load(staging / build_plan), bundle_root=staging, log=log)
    return f"TensorRT engine built and cached for this GPU at {path} (other devices build their own)"


def _ov_validator(info, calibration, graph, state, warmup, video, labels, device="CPU"):
    """validate(compiled_model) -> AUC of both protocols on the labelled video, for NNCF's accuracy control."""
    from converters.accuracy import read_val_labels, stream_scores
    from edge_vad.evaluation.evaluate import evaluate
    from edge_vad.runtime.backends.openvino import OpenVinoBackend
    from edge_vad.runtime.bundle.manifest import GraphInfo, InputInfo, Manifest, ScoreInfo, StateTensor, TargetInfo

    y = read_val_labels(Path(video), Path(labels))
    # Only what CameraStream reads: input spec, target, state, graph I/O names, score calibration, warm-up.
    manifest = Manifest.model_construct(
        bundle_id="nncf-validation", input=InputInfo(**info["input"]),
        target=TargetInfo(name="openvino", backend="openvino", precision="int8", device=device),
        graph=GraphInfo(file="-", opset=graph["opset"], inputs=graph["inputs"], outputs=graph["outputs"]),
        state=[StateTensor(**s) for s in state], warmup_frames=warmup,
        score=ScoreInfo(calibration=calibration, paper_score="-"),
    )
    bundle = Bundle(Path("."), manifest)

    def validate(compiled) -> dict:
        r = evaluate(stream_scores(bundle, OpenVinoBackend(compiled=compiled), Path(video)), y)
        return {"auc_stream": float(r["auc_stream"]), "auc_offline": float(r["auc_offline"])}

    return validate
