"""``edge-vad demo``: the product end to end on what ships in the package.

A shipped clip (vtest frames 480–794 with injected anomalies) goes through a
shipped pretrained bundle; events go over MQTT (an embedded broker unless one
is given) to a subscriber that prints them; then the run is scored against the
clip's labels and plotted.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CLIP = ASSETS / "demo" / "vtest_anomalies_demo.avi"
DEMO_LABELS = ASSETS / "demo" / "vtest_anomalies_demo.labels.npy"


def shipped_bundle(model: str) -> Path:
    path = ASSETS / "bundles" / f"{model}-edge"
    if not (path / "manifest.json").exists():
        shipped = sorted(p.name.removesuffix("-edge") for p in (ASSETS / "bundles").glob("*-edge"))
        raise EdgeVadError(f"no pretrained bundle ships for model '{model}'; shipped: {', '.join(shipped) or 'none'}")
    return path


def run_demo(model: str, broker: str | None, out: Path, threads: int | None = None, echo=print) -> dict:
    from edge_vad.data.labels import load_labels
    from edge_vad.evaluation.evaluate import evaluate, format_result
    from edge_vad.evaluation.scorers import Scores, score_framediff
    from edge_vad.runtime.alerts.broker import EmbeddedBroker
    from edge_vad.runtime.daemon.scheduler import run_camera
    from edge_vad.runtime.alerts.listen import Listener

    bundle = shipped_bundle(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = []
    with contextlib.ExitStack() as stack:
        if broker is None:
            embedded = stack.enter_context(EmbeddedBroker())
            broker = embedded.url
            echo(f"embedded MQTT broker on {broker}")
        listener = stack.enter_context(Listener(broker, prefix="edge-vad"))
        echo(f"running {bundle.name} on {DEMO_CLIP.name}; alerts as the subscriber receives them:")
        summary = run_camera(bundle, str(DEMO_CLIP), "demo-cam", broker, device_id="demo", threads=threads,
                             on_step=steps.append)
        # Every event is acknowledged by the broker when run_camera returns; give the subscriber a moment too.
        listener.wait_for(lambda: len(listener.events) >= len(summary.events), timeout=10)
        received = list(listener.events)
    echo(f"\n{summary.frames} frames at {summary.fps:.1f} fps; "
         f"{sum(e['type'] == 'start' for e in summary.events)} events, {len(received)}/{len(summary.events)} messages received")

    labels = load_labels(DEMO_LABELS)
    warmup = next((s.index for s in steps if not np.isnan(s.score)), 0)
    peak = max((s for s in steps if s.error_map is not None), key=lambda s: s.score, default=None)
    import json as _json

    manifest = _json.loads((bundle / "manifest.json").read_text())
    scores = Scores(manifest["bundle_id"], np.array([s.error for s in steps]), np.array([s.score for s in steps]),
                    manifest["score"]["calibration"]["threshold"], warmup, peak.error_map if peak else None)
    result = evaluate(scores, labels)
    baseline = evaluate(score_framediff(DEMO_CLIP), labels)
    echo("\n" + format_result(result))
    echo(f"framediff      AUC streaming {baseline['auc_stream']:.4f}   offline {baseline['auc_offline']:.4f}")
    try:
        from edge_vad.evaluation.report import write_report

        paths = write_report(scores, labels, result, out, video=DEMO_CLIP)
        echo("report: " + ", ".join(str(p) for p in paths))
    except EdgeVadError as exc:  # matplotlib is optional on a device
        echo(f"(no plots: {exc})")
    summary_json = {"result": result, "framediff": baseline, "events": received,
                    "frames": summary.frames, "fps": summary.fps, "finished": time.time()}
    (out / "demo.json").write_text(json.dumps(summary_json, indent=2, default=str))
    return summary_json
