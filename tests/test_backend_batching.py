"""More cameras than an engine takes in one call: the backend splits them into chunks (what the TensorRT
backend does above its engine's max batch), with a real ONNX Runtime session executing each chunk."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import REPO

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends.batching import run_in_chunks
from edge_vad.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge_vad.runtime.bundle.loader import load_bundle


@pytest.fixture(scope="module")
def backend_and_inputs():
    bundle = load_bundle(REPO / "edge_vad/assets/bundles/stconvlstm-edge")
    rng = np.random.default_rng(0)
    inputs = {i.name: rng.random((7, *i.shape[1:]), dtype=np.float32) for i in bundle.manifest.graph.inputs}
    return OnnxRuntimeBackend(bundle.graph_path, threads=1), inputs


@pytest.mark.parametrize("max_batch, chunks", [(4, [4, 3]), (1, [1] * 7), (2, [2, 2, 2, 1]), (7, [7]), (8, [7])])
def test_a_batch_above_the_engines_max_runs_in_chunks_in_camera_order(backend_and_inputs, max_batch, chunks):
    backend, inputs = backend_and_inputs
    seen = []

    def run(part):
        seen.append(len(next(iter(part.values()))))
        return backend.run(part)

    whole = backend.run(inputs)
    split = run_in_chunks(run, inputs, max_batch)
    assert seen == chunks
    assert set(split) == set(whole)
    for name in whole:
        assert split[name].shape == whole[name].shape
        np.testing.assert_allclose(split[name], whole[name], rtol=1e-5, atol=1e-6)
    # Each camera's row is its own: the chunked output of camera 5 is camera 5's single call.
    alone = backend.run({k: v[5:6] for k, v in inputs.items()})
    np.testing.assert_allclose(split["error"][5:6], alone["error"], rtol=1e-5, atol=1e-6)


def test_inputs_with_different_camera_counts_are_refused(backend_and_inputs):
    backend, inputs = backend_and_inputs
    bad = dict(inputs, frame=inputs["frame"][:3])
    with pytest.raises(EdgeVadError, match="disagree on the batch"):
        run_in_chunks(backend.run, bad, 2)
