"""Export a model's streaming step to ONNX with its state as explicit inputs/outputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

OPSET = 17


def export_step(model, path: Path, opset: int = OPSET) -> dict:
    """Write the step graph; returns the graph's input/output names and shapes."""
    step = model.step_module().eval()
    spec = model.input_spec()
    frame = torch.zeros(1, *(spec.table or (spec.channels, spec.height, spec.width)))
    states = [torch.zeros(1, *s.shape) for s in model.state_specs()]
    inputs = list(step.input_names)
    outputs = list(step.output_names)
    # Batch is dynamic so several cameras can share one call.
    dynamic = {name: {0: "batch"} for name in inputs + outputs}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, but it
        # handles the unrolled recurrent loops in seconds and exactly.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                step,
                (frame, *states),
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    import onnx

    simplified = simplify(path)
    onnx.checker.check_model(str(path))
    graph = onnx.load(str(path)).graph

    def describe(values):
        return [
            {"name": v.name, "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim], "dtype": "float32"}
            for v in values
        ]

    return {"inputs": describe(graph.input), "outputs": describe(graph.output), "opset": opset, "simplified": simplified}


def simplify(path: Path) -> bool:
    """Fold constants and fuse the exporter's shape arithmetic (onnxslim), in place.

    Names of inputs and outputs are the runtime's contract, so a simplified
    graph that renamed them is discarded.  Returns whether it was kept.
    """
    import importlib.util

    import onnx

    if importlib.util.find_spec("onnxslim") is None:
        return False
    import onnxslim

    before = onnx.load(str(path))
    after = onnxslim.slim(before)
    names = lambda m: ([i.name for i in m.graph.input], [o.name for o in m.graph.output])  # noqa: E731
    if after is None or names(after) != names(before):
        return False
    onnx.save(after, str(path))
    return True
