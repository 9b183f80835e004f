"""OpenVINO IR (xml + bin) from the ONNX step graph; INT8 through NNCF.

FP32/FP16 are ``openvino.convert_model`` + ``openvino.save_model`` (FP16 by
compressing the weights, as the GPU and NPU plugins prefer).  INT8 is NNCF
post-training quantization on real stream samples; when labelled validation
footage is given, NNCF's accuracy-controlled mode keeps the layers that cost
AUC in float until the drop is within the tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edge_vad.errors import require

IR_XML = "model.xml"
IR_BIN = "model.bin"


def _ov():
    return require("openvino", "openvino", "Converting to OpenVINO IR")


def _nncf():
    return require("nncf", "openvino", "INT8 quantization for OpenVINO")


def ignored_scope(nncf):
    """Keep the recurrent gate arithmetic and the error computation in float, as the QDQ path does."""
    return nncf.IgnoredScope(types=["Multiply", "Add", "Subtract", "Concat", "Power", "Sqrt", "ReduceSum",
                                    "Sigmoid", "Tanh"], validate=False)


def convert_ir(onnx_path: Path, out_dir: Path, precision: str, samples: list[dict] | None = None,
               validate: Callable | None = None, max_drop: float = 0.01, log=print) -> dict:
    """Write model.xml/.bin into ``out_dir``; ``validate(compiled_model) -> AUC`` switches on accuracy control."""
    ov = _ov()
    model = ov.convert_model(str(onnx_path))
    report: dict = {"openvino": ov.get_version(), "precision": precision}
    if precision == "int8":
        nncf = _nncf()
        dataset = nncf.Dataset(samples)
        common = dict(preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(samples),
                      ignored_scope=ignored_scope(nncf))
        if validate is not None:
            # One validation item: the whole labelled video, streamed in order (state needs order).
            log(f"int8: NNCF accuracy-controlled quantization (max AUC drop {max_drop})")
            model = nncf.quantize_with_accuracy_control(
                model, calibration_dataset=dataset, validation_dataset=nncf.Dataset([None]),
                validation_fn=lambda compiled, _items: validate(compiled),
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, **common,
            )
            report["mode"] = "nncf-accuracy-control"
        else:
            log(f"int8: NNCF post-training quantization on {len(samples)} stream samples")
            model = nncf.quantize(model, dataset, **common)
            report["mode"] = "nncf-ptq"
        report.update(preset="performance (symmetric)", calibration_samples=len(samples))
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_dir / IR_XML), compress_to_fp16=(precision == "fp16"))
    return report
