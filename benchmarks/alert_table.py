"""The alert table of docs/results.md from `edge-vad eval MODEL --testset DIR --json` results.

    for m in ...; do edge-vad eval $m --testset runs/testset --json > runs/alert-eval/$m.json; done
    python benchmarks/alert_table.py runs/alert-eval/*.json

One row per result: anomalies that caused an event (moving, still), median delay, false events on the
unperturbed soak (clean + reversed, 63 s), per 10 minutes of the randomized soak, on each perturbation,
and the share of soak time in alarm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PERTURBED = ("darker", "brighter", "dusk", "lights_on", "noise", "shake", "jpeg")


def row(path: Path) -> str:
    r = json.loads(path.read_text())
    s, soak = r["summary"], r["soak"]
    delay = "-" if s.get("median_delay_s") is None else f"{s['median_delay_s']:.2f}"
    perturbed = " / ".join(str(soak[n]["events"]) if n in soak else "-" for n in PERTURBED)
    return (f"| {path.stem} | {r['threshold']:.2f} | {s.get('caused_moving', '-')} | {s.get('caused_still', '-')} | "
            f"{delay} | {s['false_events_unperturbed']} | {s.get('false_events_per_10min_random', '-')} | {perturbed} | "
            f"{s.get('alarm_share_all', 0):.1%} | {r['clips']['moving']['auc_stream']:.3f} |")


def main(paths: list[str]) -> None:
    print("| result | threshold | caused (moving) | caused (still) | median delay s | false events, clean + reversed "
          "| false events / 10 min, random soak | false events: " + " / ".join(PERTURBED) + " | soak time in alarm "
          "| AUC (moving) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for p in paths:
        print(row(Path(p)))


if __name__ == "__main__":
    main(sys.argv[1:])
