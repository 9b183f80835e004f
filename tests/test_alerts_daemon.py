"""The daemon and the evaluator raise the same events: numbers from eval are what a camera would send."""

from __future__ import annotations

import pytest

from daemon_helpers import Subscriber, make_config
from helpers import wait_until

pytestmark = pytest.mark.slow


def test_events_over_mqtt_are_the_events_eval_counts(daemon_bundle, anomaly_clip, mosquitto, tmp_path):
    from edge_vad.evaluation.alerts import events_from_scores
    from edge_vad.evaluation.scorers import score_bundle
    from edge_vad.runtime.daemon.scheduler import Daemon

    scores = score_bundle(daemon_bundle, anomaly_clip)
    expected = events_from_scores(scores.stream, scores.threshold)
    assert expected, "the flying block raises an event: otherwise this test compares nothing"

    consumer = Subscriber(mosquitto).start()
    cfg = make_config(tmp_path, mosquitto, [{"name": "cam", "source": str(anomaly_clip), "bundle": str(daemon_bundle),
                                             "realtime": False}])
    daemon = Daemon(cfg)
    try:
        daemon.run(install_signals=False)
        produced = [m for m in daemon.produced if m["type"] in ("start", "end")]
        assert wait_until(lambda: len([e for e in consumer.unique() if e["type"] in ("start", "end")]) >= len(produced), 20)
    finally:
        consumer.stop()
    got = [e for e in consumer.unique() if e["type"] in ("start", "end")]
    starts = [(e["start_frame"], e["frame_index"]) for e in got if e["type"] == "start"]
    ends = [e["end_frame"] for e in got if e["type"] == "end"]
    assert starts == [(e.start, e.opened) for e in expected]
    # An event still open when the file ends is closed by the daemon at the last frame; eval leaves it open.
    assert ends[:len([e for e in expected if e.end is not None])] == [e.end for e in expected if e.end is not None]
