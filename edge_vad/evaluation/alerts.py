"""What a user receives, measured: events, which anomalies caused one, false events per hour.

Scores become events through the daemon's own ``EventTracker`` (same hysteresis, minimum length,
end rule), so these numbers are the daemon's; ``tests/test_alerts_eval.py`` checks them against
events delivered over MQTT. An injected anomaly counts as **caused** only when an event *starts*
inside it and no event starts there on its counterfactual (the same frames without it, or with a
runner walking instead): busy normal traffic that would have raised the event anyway earns nothing.
The delay is from the anomaly's first visible frame to the frame whose score opened the event (the
moment the ``start`` message goes out). On normal footage every event is a false one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edge_vad.runtime.alerts.events import EventTracker


@dataclass(frozen=True)
class Policy:
    """The tracker settings events are made with (the daemon's defaults; ``CameraConfig`` overrides)."""

    min_frames: int = 3
    end_frames: int = 5
    end_threshold: float | None = None

    def tracker(self, threshold: float) -> EventTracker:
        return EventTracker("eval", threshold, end_threshold=self.end_threshold, min_frames=self.min_frames,
                            end_frames=self.end_frames, update_every=0)


@dataclass
class Event:
    start: int  # first frame of the run that opened it
    opened: int  # frame whose score opened it: when the start message is sent
    end: int | None  # first frame of the low run that closed it (None: still open when the clip ended)
    peak: float

    def frames(self, n: int) -> range:
        return range(self.start, n if self.end is None else self.end)


def events_from_scores(scores, threshold: float, policy: Policy = Policy()) -> list[Event]:
    """The events the daemon would raise on these per-frame scores (NaN: warming up, no score)."""
    tracker = policy.tracker(threshold)
    out: list[Event] = []
    for i, s in enumerate(np.asarray(scores, np.float64)):
        for m in tracker.update(i, float(i), float(s)):
            if m["type"] == "start":
                out.append(Event(m["start_frame"], i, None, m["peak_score"]))
            elif m["type"] == "end":
                out[-1].end, out[-1].peak = m["end_frame"], m["peak_score"]
    return out


def alarm_share(events: list[Event], n: int) -> float:
    """Share of frames inside an event."""
    if n == 0:
        return 0.0
    inside = np.zeros(n, bool)
    for e in events:
        inside[e.start:n if e.end is None else e.end] = True
    return float(inside.mean())


@dataclass
class AnomalyOutcome:
    kind: str
    first: int
    last: int
    caused: bool
    delay_s: float | None  # when caused
    why: str  # "caused", "no event started inside", "an event started there without it too", "already in alarm"

    def to_dict(self) -> dict:
        return asdict(self)


def attribute(anomalies: list[dict], events: list[Event], twin_events: list[Event], fps: float) -> list[AnomalyOutcome]:
    """Which anomalies caused an event of their own (see the module docstring)."""
    out = []
    for a in anomalies:
        first, last = int(a["first_frame"]), int(a["last_frame"])
        mine = [e for e in events if first <= e.start <= last]
        twins = [e for e in twin_events if first <= e.start <= last]
        open_before = any(e.start < first and (e.end is None or e.end > first) for e in events)
        if mine and not twins:
            out.append(AnomalyOutcome(a["kind"], first, last, True, (mine[0].opened - first) / fps, "caused"))
        elif mine:
            out.append(AnomalyOutcome(a["kind"], first, last, False, None, "an event started there without it too"))
        else:
            out.append(AnomalyOutcome(a["kind"], first, last, False, None,
                                      "already in alarm" if open_before else "no event started inside"))
    return out


@dataclass
class SoakOutcome:
    name: str
    frames: int
    events: int
    alarm_share: float
    fps: float
    starts: list[int] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.frames / self.fps / 3600.0

    @property
    def per_hour(self) -> float:
        return self.events / self.hours if self.frames else 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "frames": self.frames, "minutes": round(self.frames / self.fps / 60, 2),
                "events": self.events, "per_hour": round(self.per_hour, 2),
                "alarm_share": round(self.alarm_share, 4), "starts": self.starts}


def soak_outcome(name: str, scores, threshold: float, fps: float, policy: Policy = Policy()) -> SoakOutcome:
    events = events_from_scores(scores, threshold, policy)
    n = len(scores)
    return SoakOutcome(name, n, len(events), alarm_share(events, n), fps, [e.opened for e in events])


def summarize(clips: dict[str, list[AnomalyOutcome]], soaks: list[SoakOutcome]) -> dict:
    """The headline numbers: caused detections per clip and kind, median delay, false events per hour."""
    out: dict = {}
    delays = []
    for clip, outcomes in clips.items():
        out[f"caused_{clip}"] = f"{sum(o.caused for o in outcomes)}/{len(outcomes)}"
        kinds: dict[str, list[int]] = {}
        for o in outcomes:
            kinds.setdefault(o.kind, [0, 0])
            kinds[o.kind][0] += o.caused
            kinds[o.kind][1] += 1
        out[f"caused_{clip}_by_kind"] = {k: f"{c}/{n}" for k, (c, n) in kinds.items()}
        delays += [o.delay_s for o in outcomes if o.caused]
    out["median_delay_s"] = float(np.median(delays)) if delays else None
    by = {s.name: s for s in soaks}
    unperturbed = [by[n] for n in ("clean", "reversed") if n in by]
    out["false_events_unperturbed"] = sum(s.events for s in unperturbed)
    if "random" in by:
        r = by["random"]
        out["false_events_per_10min_random"] = round(r.events / (r.frames / r.fps / 600.0), 2)
    frames = sum(s.frames for s in soaks)
    if frames:
        out["false_events_per_hour_all"] = round(sum(s.events for s in soaks) / (frames / soaks[0].fps / 3600), 2)
        out["alarm_share_all"] = round(sum(s.alarm_share * s.frames for s in soaks) / frames, 4)
    return out


# ------------------------------------------------------------ the whole test set


def framediff_threshold(video, frames: tuple[int, int], fps: float, alerts_per_hour: float, augment: bool = True,
                        conditioning: bool = True) -> tuple[float, dict]:
    """framediff has no model to calibrate: its threshold is fitted to the same budget, on the same normal
    footage and variants, as the models' (``edge_vad.scoring.calibrate``)."""
    from edge_vad.data.frames import read_frames
    from edge_vad.data.perturb import CALIBRATION_VARIANTS, apply_variant
    from edge_vad.evaluation.scorers import framediff_scores
    from edge_vad.scoring.budget import fit_threshold

    base = list(read_frames(video, *frames))
    runs = [framediff_scores(base, conditioning)]
    if augment:
        runs += [framediff_scores(apply_variant(base, v), conditioning) for v in CALIBRATION_VARIANTS]
    fit = fit_threshold(runs, fps, alerts_per_hour)
    return fit.threshold, fit.to_dict()


def evaluate_testset(model: str, root, threads: int | None = None, conditioning: bool = True,
                     threshold: float | None = None, policy: Policy = Policy(), soaks: list[str] | None = None,
                     progress=None) -> dict:
    """Every clip of a test set (``edge-vad make-testset``'s ``testset.json``): frame AUC, events, which
    anomalies caused one, and false events on the normal soak. ``threshold`` overrides the model's own."""
    import json
    from pathlib import Path

    from edge_vad.data.labels import load_labels
    from edge_vad.evaluation.evaluate import evaluate
    from edge_vad.evaluation.scorers import score_any

    root = Path(root)
    index = json.loads((root / "testset.json").read_text())
    fps = float(index["fps"])
    say = progress or (lambda message: None)

    def scores(video: str):
        say(f"{model}: {video}")
        return score_any(model, root / video, threads=threads, conditioning=conditioning)

    out: dict = {"model": model, "testset": str(root), "policy": asdict(policy), "conditioning": conditioning,
                 "clips": {}, "soak": {}, "series": {}}
    outcomes: dict[str, list[AnomalyOutcome]] = {}
    for name, clip in index["clips"].items():
        s = scores(clip["video"])
        tau = threshold if threshold is not None else s.threshold
        if tau is None:
            raise ValueError(f"{model} has no threshold: pass one (framediff: fitted with framediff_threshold)")
        twin = scores(clip["counterfactual"])
        y = load_labels(root / clip["labels"], len(s.stream))
        events, twin_events = events_from_scores(s.stream, tau, policy), events_from_scores(twin.stream, tau, policy)
        outcomes[name] = attribute(clip["events"], events, twin_events, fps)
        frame = evaluate(s, y)
        out["threshold"] = float(tau)
        out["clips"][name] = {"auc_stream": frame["auc_stream"], "auc_offline": frame["auc_offline"],
                              "events": [asdict(e) for e in events], "counterfactual_events": [asdict(e) for e in twin_events],
                              "anomalies": [o.to_dict() for o in outcomes[name]],
                              "alarm_share_normal": _normal_alarm_share(events, y)}
        out["series"][name] = {"score": s.stream.tolist(), "counterfactual": twin.stream.tolist(), "labels": y.tolist()}
    results = []
    for name, soak in index["soak"].items():
        if soaks is not None and name not in soaks:
            continue
        s = scores(soak["video"])
        results.append(soak_outcome(name, s.stream, out["threshold"], fps, policy))
        out["soak"][name] = results[-1].to_dict()
    out["summary"] = summarize(outcomes, results)
    return out


def _normal_alarm_share(events: list[Event], labels) -> float:
    labels = np.asarray(labels)
    inside = np.zeros(len(labels), bool)
    for e in events:
        inside[e.start:len(labels) if e.end is None else e.end] = True
    normal = labels == 0
    return float(inside[normal].mean()) if normal.any() else 0.0


def format_testset(r: dict) -> str:
    s = r["summary"]
    lines = [f"model            {r['model']}   threshold {r['threshold']:.2f}"]
    for name, clip in r["clips"].items():
        got = [f"{a['kind']}{'✓' if a['caused'] else '✗'}" for a in clip["anomalies"]]
        lines.append(f"{name:16s} AUC {clip['auc_stream']:.3f}  caused {s['caused_' + name]}: {' '.join(got)}")
    lines.append(f"median delay     {s['median_delay_s']:.2f} s" if s.get("median_delay_s") is not None else "median delay     -")
    for name, soak in r["soak"].items():
        lines.append(f"soak {name:11s} {soak['events']:3d} false event(s) in {soak['minutes']:.1f} min "
                     f"({soak['per_hour']:.1f}/hour), {soak['alarm_share']:.1%} in alarm")
    return "\n".join(lines)


def events_on_labels(scores, threshold: float, labels, fps: float, policy: Policy = Policy()) -> dict:
    """Events on one labelled video (no counterfactual): per labelled anomaly whether an event started
    inside it and when, and the false events (started on normal frames) per hour of normal footage."""
    labels = np.asarray(labels)[: len(scores)]
    events = events_from_scores(scores, threshold, policy)
    edges = np.diff(np.r_[0, (labels > 0).astype(int), 0])
    spans = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))
    anomalies = []
    for first, last in spans:
        inside = [e for e in events if first <= e.start <= last]
        anomalies.append({"first": int(first), "last": int(last), "event_started": bool(inside),
                          "delay_s": (inside[0].opened - first) / fps if inside else None})
    false = [e for e in events if e.start < len(labels) and labels[e.start] == 0]
    normal_h = float((labels == 0).sum()) / fps / 3600.0
    return {"raised": len(events), "anomalies": anomalies, "false_events": len(false),
            "false_per_hour": round(len(false) / normal_h, 2) if normal_h else None,
            "alarm_share_normal": round(_normal_alarm_share(events, labels), 4)}
