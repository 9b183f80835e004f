"""Print the AUC/EER table of several models on one labelled video (markdown).

    python benchmarks/accuracy_table.py --video runs/testset/vtest_anomalies.avi \
        --labels runs/testset/labels.npy runs/stconvlstm-edge runs/stconvlstm-paper framediff

Each MODEL is a checkpoint directory, a bundle directory or ``framediff``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_vad.data.frames import video_info  # noqa: E402
from edge_vad.data.labels import load_labels  # noqa: E402
from edge_vad.evaluation.evaluate import evaluate  # noqa: E402
from edge_vad.evaluation.scorers import score_any  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    args = ap.parse_args()
    y = load_labels(args.labels, video_info(args.video).frames)
    print("| model | frames | AUC streaming | EER streaming | AUC offline | EER offline | FAR @ threshold | detections @ threshold |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for model in args.models:
        r = evaluate(score_any(model, args.video), y)
        far = f"{r['false_alarm_rate']:.1%}" if "false_alarm_rate" in r else "–"
        det = f"{r['detection_rate']:.1%}" if "detection_rate" in r else "–"
        print(f"| {r['model']} (`{model}`) | {r['frames']} | {r['auc_stream']:.4f} | {r['eer_stream']:.4f} | "
              f"{r['auc_offline']:.4f} | {r['eer_offline']:.4f} | {far} | {det} |", flush=True)


if __name__ == "__main__":
    main()
