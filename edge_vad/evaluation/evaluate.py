"""Frame-level AUC/EER under the two protocols.

* offline (the papers'): the raw error, min–max normalised over the whole test
  video, regularity = 1 − normalised error;
* streaming (a camera's): the causal score calibrated on held-out normal
  frames, no knowledge of the test video.

Frames before a method's warm-up have no score and are left out, as the seed
code drops them.
"""

from __future__ import annotations

import numpy as np

from edge_vad.evaluation.scorers import Scores
from edge_vad.scoring.metrics import auc, eer, regularity


def evaluate(scores: Scores, labels: np.ndarray) -> dict:
    n = min(len(labels), len(scores.errors))
    labels = np.asarray(labels[:n])
    valid = ~np.isnan(scores.errors[:n]) & ~np.isnan(scores.stream[:n])
    y = labels[valid]
    offline = 1.0 - regularity(scores.errors[:n][valid])  # anomaly score = 1 − regularity
    stream = scores.stream[:n][valid]
    result = {
        "model": scores.name,
        "frames": int(valid.sum()),
        "anomalous_frames": int(y.sum()),
        "auc_offline": auc(y, offline),
        "auc_stream": auc(y, stream),
        "eer_offline": eer(y, offline),
        "eer_stream": eer(y, stream),
    }
    result["eer"] = result["eer_stream"]
    if scores.threshold is not None:
        alarm = stream >= scores.threshold
        result["threshold"] = float(scores.threshold)
        result["false_alarm_rate"] = float(alarm[y == 0].mean())
        result["detection_rate"] = float(alarm[y == 1].mean())
    return result


def format_result(r: dict) -> str:
    lines = [
        f"model          {r['model']}",
        f"frames         {r['frames']} scored ({r['anomalous_frames']} anomalous)",
        f"AUC streaming  {r['auc_stream']:.4f}   EER {r['eer_stream']:.4f}",
        f"AUC offline    {r['auc_offline']:.4f}   EER {r['eer_offline']:.4f}   (per-video min–max, as in the paper)",
    ]
    if "threshold" in r:
        lines.append(
            f"at threshold   {r['threshold']:.2f} σ: false alarms {r['false_alarm_rate']:.1%} of normal frames, "
            f"detections {r['detection_rate']:.1%} of anomalous frames"
        )
    ev = r.get("events")
    if ev:
        hit = sum(a["event_started"] for a in ev["anomalies"])
        lines.append(f"events         {ev['raised']} raised; {hit}/{len(ev['anomalies'])} labelled anomalies opened one; "
                     f"{ev['false_events']} false ({ev['false_per_hour']}/hour of normal footage), "
                     f"{ev['alarm_share_normal']:.1%} of normal time in alarm")
    return "\n".join(lines)
