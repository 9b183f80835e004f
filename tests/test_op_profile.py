"""How `bench --ops` turns the engine's profile into ms per model call (edge_vad/benchmarking/op_profile.py)."""

from __future__ import annotations

import pytest

from edge_vad.benchmarking.op_profile import OpProfile, onnxruntime_calls


def _ort_profile(calls: list[list[tuple[str, float]]]) -> list[dict]:
    """ONNX Runtime's profile format: one ``model_run`` per call, a ``*_kernel_time`` Node event per kernel (µs)."""
    events, ts = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 50}], 100
    for kernels in calls:
        start = ts
        for i, (op, us) in enumerate(kernels):
            events.append({"cat": "Node", "name": f"node{i}_kernel_time", "ts": ts, "dur": us, "args": {"op_name": op}})
            ts += us + 1
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": ts - start})
        ts += 1000
    return events


def test_each_call_gets_its_own_kernels():
    calls = onnxruntime_calls(_ort_profile([[("Conv", 300), ("Add", 20), ("Conv", 100)], [("Conv", 350), ("Add", 30)]]))
    assert calls == [{"Conv": (0.4, 2), "Add": (0.02, 1)}, {"Conv": (0.35, 1), "Add": (0.03, 1)}]


def test_a_stalled_call_does_not_count_in_every_row():
    # Five calls of 0.5 ms; in one the OS descheduled the thread for 40 ms inside a Conv.
    calls = [[("Conv", 400), ("Add", 100)]] * 4 + [[("Conv", 40_400), ("Add", 100)]]
    prof = OpProfile.summarise("onnxruntime", onnxruntime_calls(_ort_profile(calls)))
    assert prof.runs == 5 and prof.ms == pytest.approx({"Conv": 0.4, "Add": 0.1})
    assert prof.calls == {"Conv": 1, "Add": 1} and not prof.scaled


def test_kernels_adding_up_to_more_than_the_call_are_scaled_to_it():
    """The profiler's own cost sits inside each kernel it times: 1.5 ms of kernels for a 0.5 ms call."""
    per_call = [{"Conv": (1.0, 9), "Mul": (0.5, 36)}] * 3
    prof = OpProfile.summarise("onnxruntime", per_call, call_ms=0.5)
    assert prof.scaled and prof.profiled_ms == pytest.approx(1.5)
    assert prof.total_ms == pytest.approx(0.5) and prof.ms == pytest.approx({"Conv": 1 / 3, "Mul": 1 / 6})
    table = prof.table()
    assert "| Conv (dense) | 0.333 | 66.7% | 9 |" in table
    assert "added up to 1.500 ms per call, more than the 0.500 ms the call takes without it" in table
    assert OpProfile.from_dict(prof.to_dict()) == prof

    honest = OpProfile.summarise("openvino", [{"Convolution": (0.3, 9)}], call_ms=0.5)
    assert not honest.scaled and honest.ms == {"Convolution": 0.3}
    assert "takes 0.500 ms without the profiler" in honest.table()
