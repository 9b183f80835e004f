"""EventTracker: scores in, start/update/end messages out."""

from __future__ import annotations

import math

import pytest

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.alerts.events import EventTracker, default_end_threshold, iso_utc

T0 = 1_700_000_000.0
FPS = 10.0


def feed(tracker: EventTracker, scores, first_frame: int = 0) -> list[dict]:
    """Run scores through the tracker at FPS; return every emitted message."""
    out = []
    for offset, score in enumerate(scores):
        index = first_frame + offset
        out += tracker.update(index, T0 + index / FPS, score)
    return out


def kinds(messages) -> list[str]:
    return [m["type"] for m in messages]


def make(**kwargs) -> EventTracker:
    options = dict(camera="cam1", threshold=0.5, end_threshold=0.4, min_frames=3, end_frames=3,
                   update_every=0, device="dev1", bundle_id="b1")
    options.update(kwargs)
    return EventTracker(**options)


def test_short_spike_does_not_start_an_event():
    tracker = make()
    assert feed(tracker, [0.1, 0.9, 0.9, 0.1, 0.9, 0.1, 0.2]) == []
    assert not tracker.active


def test_event_starts_after_min_frames_with_time_of_first_high_frame():
    tracker = make()
    messages = feed(tracker, [0.1, 0.6, 0.8, 0.7, 0.6])
    assert kinds(messages) == ["start"]
    start = messages[0]
    assert start["start_frame"] == 1
    assert start["frame_index"] == 3
    assert start["start_time"] == iso_utc(T0 + 0.1) == "2023-11-14T22:13:20.100Z"
    assert start["end_time"] is None and start["end_frame"] is None
    assert start["peak_score"] == 0.8 and start["peak_frame"] == 2
    assert start["score"] == 0.7
    assert (start["device"], start["camera"], start["bundle_id"], start["threshold"]) == ("dev1", "cam1", "b1", 0.5)


def test_hysteresis_keeps_event_open_between_thresholds():
    tracker = make()
    # 0.45 is below the start threshold but above end_threshold: still anomalous.
    messages = feed(tracker, [0.6, 0.6, 0.6] + [0.45] * 20)
    assert kinds(messages) == ["start"]
    assert tracker.active


def test_event_ends_after_end_frames_low_with_time_of_first_low_frame():
    tracker = make()
    messages = feed(tracker, [0.6, 0.9, 0.6, 0.3, 0.3, 0.3, 0.3])
    assert kinds(messages) == ["start", "end"]
    end = messages[1]
    assert end["id"] == messages[0]["id"]
    assert end["end_frame"] == 3 and end["end_time"] == iso_utc(T0 + 0.3)
    assert end["frame_index"] == 5
    assert end["peak_score"] == 0.9 and end["peak_frame"] == 1
    assert not tracker.active


def test_brief_dip_does_not_end_event():
    tracker = make()
    messages = feed(tracker, [0.6, 0.6, 0.6, 0.2, 0.2, 0.6, 0.2, 0.2, 0.45, 0.6])
    assert kinds(messages) == ["start"]
    assert tracker.active


def test_update_cadence_and_peak_tracking():
    tracker = make(update_every=10)
    scores = [0.6, 0.6, 0.6] + [0.7] * 10 + [0.95] + [0.7] * 19
    messages = feed(tracker, scores)
    assert kinds(messages) == ["start", "update", "update", "update"]
    assert [m["frame_index"] for m in messages] == [2, 12, 22, 32]
    assert messages[-1]["peak_score"] == 0.95 and messages[-1]["peak_frame"] == 13
    assert all(m["end_time"] is None for m in messages)


def test_update_cadence_follows_frame_indices_when_frames_are_strided():
    tracker = make(update_every=10)
    messages = []
    for index in range(0, 60, 5):
        messages += tracker.update(index, T0 + index / FPS, 0.8)
    assert kinds(messages) == ["start", "update", "update", "update", "update"]
    assert [m["frame_index"] for m in messages] == [10, 20, 30, 40, 50]


def test_flush_ends_active_event_at_given_time():
    tracker = make()
    feed(tracker, [0.6, 0.7, 0.8, 0.9])
    messages = tracker.flush(4, T0 + 0.4)
    assert kinds(messages) == ["end"]
    assert messages[0]["end_frame"] == 4 and messages[0]["end_time"] == iso_utc(T0 + 0.4)
    assert messages[0]["score"] == 0.9
    assert not tracker.active
    assert tracker.flush(5, T0 + 0.5) == []


def test_flush_during_low_run_ends_at_first_low_frame():
    tracker = make(end_frames=10)
    feed(tracker, [0.6, 0.7, 0.8, 0.1, 0.1])
    (end,) = tracker.flush(5, T0 + 0.5)
    assert end["end_frame"] == 3 and end["end_time"] == iso_utc(T0 + 0.3)
    assert end["frame_index"] == 5


def test_flush_discards_an_unfinished_start_run():
    tracker = make()
    feed(tracker, [0.9, 0.9])
    assert tracker.flush(2, T0 + 0.2) == []
    assert feed(tracker, [0.9], first_frame=3) == []


def test_nan_scores_never_start_an_event_and_break_a_run():
    tracker = make()
    assert feed(tracker, [math.nan] * 10) == []
    assert feed(tracker, [0.9, math.nan, 0.9, 0.9], first_frame=10) == []
    assert kinds(feed(tracker, [0.9], first_frame=14)) == ["start"]


def test_nan_during_event_neither_extends_nor_ends_it():
    tracker = make()
    messages = feed(tracker, [0.9, 0.9, 0.9, 0.1, math.nan, math.nan, 0.1, 0.1])
    assert kinds(messages) == ["start", "end"]
    assert messages[1]["end_frame"] == 3
    assert not math.isnan(messages[1]["score"])


def test_ids_are_stable_within_an_event_and_unique_across_events():
    tracker = make(update_every=2)
    one = feed(tracker, [0.9] * 6 + [0.1] * 3)
    two = feed(tracker, [0.9] * 6 + [0.1] * 3, first_frame=9)
    assert kinds(one)[0] == "start" and kinds(one)[-1] == "end" and "update" in kinds(one)
    assert len({m["id"] for m in one}) == 1
    assert len({m["id"] for m in two}) == 1
    assert one[0]["id"] != two[0]["id"]
    assert len(one[0]["id"]) == 32


def test_event_dict_has_exactly_the_documented_fields():
    tracker = make()
    (start,) = feed(tracker, [0.9] * 3)
    assert set(start) == {"id", "device", "camera", "type", "start_time", "end_time", "start_frame", "end_frame",
                          "frame_index", "peak_score", "peak_frame", "score", "threshold", "bundle_id"}


def test_default_end_threshold_is_below_threshold():
    tracker = EventTracker("cam", threshold=2.0)
    assert tracker.end_threshold == default_end_threshold(2.0) == pytest.approx(1.8)
    assert EventTracker("cam", threshold=-1.0).end_threshold == pytest.approx(-1.1)
    # Default min_frames=3 and end_frames=5.
    messages = feed(tracker, [2.0] * 3 + [1.9] * 10 + [1.7] * 5)
    assert kinds(messages) == ["start", "update", "end"]


@pytest.mark.parametrize("kwargs", [
    dict(threshold=0.5, end_threshold=0.6),
    dict(threshold=math.nan),
    dict(threshold=0.5, min_frames=0),
    dict(threshold=0.5, end_frames=0),
    dict(threshold=0.5, update_every=-1),
])
def test_invalid_settings_raise_user_errors(kwargs):
    with pytest.raises(EdgeVadError):
        EventTracker("cam", **kwargs)
