"""The INT8 (QDQ) graphs of the TensorRT targets carry no int32 bias DequantizeLinear, for every model.

TensorRT's dequantize layer takes only 8-bit inputs: an int32 bias DequantizeLinear (ONNX Runtime's
``quantize_static`` default) fails the engine build ("only activation types allowed as input to this
layer", onnx-tensorrt #850). Each registered model's tiny variant is exported and quantized the way
``convert`` does for each target (its ``int8_quantize_bias``); the graph is then read back.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_vad.targets import TARGETS
from edge_vad.models import get_model, list_models

pytestmark = pytest.mark.slow
TENSORRT_FAMILY = [n for n, t in TARGETS.items() if t.backend == "tensorrt" or "TensorrtExecutionProvider" in t.providers]


def int32_dequantize_inputs(path) -> list[str]:
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    return [n.input[0] for n in g.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int32]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """model name -> (FP32 step graph of its tiny, untrained variant, a few calibration samples)."""
    from converters.onnx_export import export_step
    from converters.quantize import Probe

    out = {}

    def get(name):
        if name not in out:
            entry = get_model(name)
            model = entry.torch_side().build({**entry.preset("edge"), **entry.test_overrides})
            path = tmp_path_factory.mktemp(name) / "fp32.onnx"
            graph = export_step(model, path)
            rng = np.random.default_rng(0)
            samples = [{i["name"]: rng.random((1, *i["shape"][1:]), dtype=np.float32) for i in graph["inputs"]}
                       for _ in range(4)]
            out[name] = path, Probe(samples)
        return out[name]

    return get


def _quantized(exported, model, target, tmp_path):
    from converters.quantize import to_int8

    src, probe = exported(model)
    t = TARGETS[target]
    dst = tmp_path / f"{target}.onnx"
    to_int8(src, dst, probe, keep_float="none", reduce_range=t.int8_weights() == "7-bit", exact=True, log=lambda *a: None,
            quantize_bias=t.int8_quantize_bias)
    return dst


def test_tensorrt_targets_share_one_int8_setting():
    assert {"jetson", "tensorrt"} <= set(TENSORRT_FAMILY)
    assert all(TARGETS[n].int8_quantize_bias is False for n in TENSORRT_FAMILY)


@pytest.mark.parametrize("model", [m for m in list_models() if get_model(m).supports("int8")])
def test_no_int32_bias_dequantize_in_tensorrt_int8_graphs(exported, model, tmp_path):
    import onnx

    graph = _quantized(exported, model, "jetson", tmp_path)
    assert int32_dequantize_inputs(graph) == []
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(graph)).graph.node), "it is a QDQ graph"


def test_the_cpu_target_keeps_integer_biases(exported, tmp_path):
    # The check above can fail: ONNX Runtime's default (kept for its own CPU kernels) writes int32 biases.
    assert int32_dequantize_inputs(_quantized(exported, list_models()[0], "cpu", tmp_path))
