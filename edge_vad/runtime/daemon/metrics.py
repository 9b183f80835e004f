"""Operational numbers: per-camera counters, latency percentiles, and a
Prometheus text endpoint (stdlib ``http.server``; no extra dependency).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

log = logging.getLogger("edge_vad.metrics")

#: histogram buckets for frame latency, seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)


@dataclass
class CameraStats:
    name: str
    budget_ms: float
    processed: int = 0
    skipped_rate: int = 0  # not needed at the model's frame rate (resampling)
    skipped_cadence: int = 0  # dropped to keep the cadence within the budget
    late: int = 0  # processed, but the result came later than the budget
    held: int = 0  # processed by the motion gate alone: nothing moved, the model did not run
    events: int = 0
    stride: int = 1  # the scheduler's current cadence, in model frame periods
    state_restored: bool = False
    state_saved_at: float | None = None
    state_error: str | None = None  # why the last state snapshot could not be written
    latencies: deque = field(default_factory=lambda: deque(maxlen=2000))  # capture -> result, s
    steps: deque = field(default_factory=lambda: deque(maxlen=2000))  # backend step share, s
    buckets: list = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    latency_sum: float = 0.0
    _fps_window: deque = field(default_factory=lambda: deque(maxlen=50))

    def record(self, latency: float, step: float, now: float) -> None:
        self.processed += 1
        self.latencies.append(latency)
        self.steps.append(step)
        self.latency_sum += latency
        self.buckets[next((i for i, b in enumerate(BUCKETS) if latency <= b), len(BUCKETS))] += 1
        self._fps_window.append(now)
        if latency * 1000 > self.budget_ms:
            self.late += 1

    @property
    def fps(self) -> float:
        w = self._fps_window
        return (len(w) - 1) / (w[-1] - w[0]) if len(w) > 1 and w[-1] > w[0] else 0.0

    def percentile(self, q: float, which: str = "latencies") -> float | None:
        values = getattr(self, which)
        return float(np.percentile(np.fromiter(values, float), q)) * 1000 if values else None


def prometheus_text(daemon) -> str:
    """Render the daemon's numbers in the Prometheus exposition format."""
    lines = []

    def metric(name, kind, help_, samples):
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    cams = daemon.cameras
    metric("edge_vad_frames_processed_total", "counter", "Frames scored by the model.",
           [({"camera": c.name}, c.stats.processed) for c in cams])
    skipped = []
    for c in cams:
        cc = c.capture.counters
        for reason, value in (("rate", c.stats.skipped_rate), ("cadence", c.stats.skipped_cadence),
                              ("dropped", cc.dropped), ("corrupt", cc.corrupt)):
            skipped.append(({"camera": c.name, "reason": reason}, value))
    metric("edge_vad_frames_skipped_total", "counter", "Frames not scored, by reason.", skipped)
    metric("edge_vad_frames_late_total", "counter", "Frames whose result came after the latency budget.",
           [({"camera": c.name}, c.stats.late) for c in cams])
    metric("edge_vad_frames_held_total", "counter", "Frames the motion gate answered without the model (nothing moved).",
           [({"camera": c.name}, c.stats.held) for c in cams])
    metric("edge_vad_fps", "gauge", "Frames scored per second, recent.",
           [({"camera": c.name}, round(c.stats.fps, 3)) for c in cams])
    metric("edge_vad_latency_budget_seconds", "gauge", "Latency budget per camera.",
           [({"camera": c.name}, c.stats.budget_ms / 1000) for c in cams])
    lines.append("# HELP edge_vad_frame_latency_seconds Capture-to-result latency per frame.")
    lines.append("# TYPE edge_vad_frame_latency_seconds histogram")
    for c in cams:
        cum = 0
        for b, n in zip(BUCKETS, c.stats.buckets):
            cum += n
            lines.append(f'edge_vad_frame_latency_seconds_bucket{{camera="{c.name}",le="{b}"}} {cum}')
        lines.append(f'edge_vad_frame_latency_seconds_bucket{{camera="{c.name}",le="+Inf"}} {c.stats.processed}')
        lines.append(f'edge_vad_frame_latency_seconds_sum{{camera="{c.name}"}} {c.stats.latency_sum:.6f}')
        lines.append(f'edge_vad_frame_latency_seconds_count{{camera="{c.name}"}} {c.stats.processed}')
    metric("edge_vad_events_total", "counter", "Anomaly events started.",
           [({"camera": c.name}, c.stats.events) for c in cams])
    metric("edge_vad_reconnects_total", "counter", "Successful reconnections after a loss.",
           [({"camera": c.name, "kind": "camera"}, c.capture.counters.reconnects) for c in cams]
           + [({"kind": "broker"}, daemon.publisher.reconnects)])
    metric("edge_vad_step_failures_total", "counter", "Model steps that raised (the frame was not scored).",
           [({"camera": c.name}, c.step_failures) for c in cams])
    outbox, publisher = daemon.outbox, daemon.publisher
    metric("edge_vad_outbox_depth", "gauge", "Messages stored and not yet acknowledged by the broker.",
           [({}, outbox.depth())])
    metric("edge_vad_outbox_in_memory", "gauge",
           "Undelivered messages waiting in memory because the disk refuses writes.",
           [({}, outbox.in_memory)])
    metric("edge_vad_outbox_dropped_total", "counter",
           "Messages lost: the disk refused them and the memory bound was reached.",
           [({}, outbox.dropped)])
    metric("edge_vad_state_disk_error", "gauge", "1 while the state dir refuses writes (full, read-only, I/O error).",
           [({}, int(outbox.disk_error is not None))])
    metric("edge_vad_outbox_refused", "gauge", "Stored messages the broker refused (PUBACK reason >= 0x80, e.g. ACL).",
           [({}, len(publisher.denied))])
    metric("edge_vad_publish_refused_total", "counter", "PUBACKs with a failure reason code since start.",
           [({}, publisher.denied_total)])
    metric("edge_vad_broker_connected", "gauge", "1 while connected to the MQTT broker.",
           [({}, int(publisher.connected))])
    return "\n".join(lines) + "\n"


class MetricsServer:
    def __init__(self, daemon, host: str, port: int):
        outer = daemon

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = prometheus_text(outer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # scrapes every few seconds would flood the log
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="edge-vad-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self.thread.start()
        log.info("Prometheus metrics on http://%s:%d/metrics", *self.server.server_address[:2])
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def now() -> float:
    return time.time()
