"""OpenVINO IR (xml + bin) from the ONNX step graph; INT8 through NNCF.

FP32/FP16 are ``openvino.convert_model`` + ``openvino.save_model`` (FP16 by
compressing the weights, as the GPU and NPU plugins prefer).  INT8 is NNCF
post-training quantization on real stream samples, of the convolutions only
(as the QDQ path: gate arithmetic, memory reads and the error computation stay
float), with the same float candidates as ``converters.quantize`` chosen by
the same rule and measurement, here measured on the OpenVINO device itself.
With labelled tuning footage, NNCF's accuracy-controlled mode then keeps more
layers in float until the AUC drop on it is within the tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edge_vad.errors import require

IR_XML = "model.xml"
IR_BIN = "model.bin"
CONV_TYPES = {"Convolution", "ConvolutionBackpropData", "GroupConvolution"}


def _ov():
    return require("openvino", "openvino", "Converting to OpenVINO IR")


def _nncf():
    return require("nncf", "openvino", "INT8 quantization for OpenVINO")


def ignored_scope(nncf, model, float_convs: list[str] = ()):
    """Quantize convolutions only, and not those in ``float_convs`` (OpenVINO op names).

    NNCF on its own also quantizes the inputs of Divide, Gather, ReduceMean and the like: in BiSHO that
    put 8-bit steps into the attention's min–max normalisation and the error computation."""
    types = sorted({op.get_type_name() for op in model.get_ops()} - CONV_TYPES)
    return nncf.IgnoredScope(types=types, names=list(float_convs), validate=False)


def ov_conv_index(model, onnx_convs: list[str], onnx_outputs: dict[str, str]) -> dict[str, object]:
    """ONNX Conv/ConvTranspose name → its OpenVINO convolution op.  The ONNX frontend gives the node's name
    (or its output's) to the last op it decomposes into (the bias Add), so walk up from there."""
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    index = {}
    for name in onnx_convs:
        op = by_name.get(name) or by_name.get(onnx_outputs.get(name, ""))
        while op is not None and op.get_type_name() not in CONV_TYPES:
            op = op.input_value(0).get_node() if op.get_input_size() else None
        if op is not None:
            index[name] = op
    return index


def ov_conv_names(model, onnx_convs: list[str], onnx_outputs: dict[str, str]) -> list[str]:
    """OpenVINO names of ONNX Conv/ConvTranspose nodes (for NNCF's ignored scope)."""
    return [op.get_friendly_name() for op in ov_conv_index(model, onnx_convs, onnx_outputs).values()]


def int8_convs(model, onnx_outputs: dict[str, str]) -> set[str]:
    """ONNX names of the convolutions of an NNCF-quantized model that run in INT8 (a FakeQuantize on their input)."""
    return {name for name, op in ov_conv_index(model, list(onnx_outputs), onnx_outputs).items()
            if op.input_value(0).get_node().get_type_name() == "FakeQuantize"}


#: NNCF's overflow fix for each weight range a bundle records (``Manifest.graph.int8_weights``)
OVERFLOW_FIX = {"8-bit": "disable", "7-bit first layer": "first_layer_only", "7-bit": "enable"}


def int8_weights_for(weights: str, forced: bool) -> str:
    """The weight range an OpenVINO INT8 bundle gets: full range on CPUs with VNNI; without it, NNCF's own
    recommendation for AVX2/AVX-512 (7 bits in the first convolution of each input) unless 7 bits
    everywhere was asked for."""
    return "7-bit first layer" if weights == "7-bit" and not forced else weights


def advanced_parameters(int8_weights: str = "7-bit first layer"):
    """Activation ranges from the largest value over all calibration samples, as the QDQ path's MinMax, and the
    overflow fix set for the weight range chosen (never NNCF's default, which assumes a CPU without VNNI).

    NNCF's default for activations averages each sample's min and max (MEAN_MINMAX): a range that about
    half the normal frames already exceed, and that clips harder the larger activations anomalies cause."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
                                          overflow_fix=OverflowFix(OVERFLOW_FIX[int8_weights]))


def _quantize_int8(onnx_path: Path, probe, spec, device: str, int8_weights: str, log) -> tuple[object, dict]:
    """NNCF PTQ with float groups chosen as in converters.quantize (measured on ``device``)."""
    import onnx

    from converters.quantize import (QUANTIZED_OPS, deviation, describe_choice, float_candidates, reference_outputs,
                                     select_float)
    from edge_vad.runtime.backends.openvino import OpenVinoBackend

    ov, nncf = _ov(), _nncf()
    samples = probe.samples
    graph = onnx.load(str(onnx_path))
    convs = [n for n in graph.graph.node if n.op_type in QUANTIZED_OPS]
    outputs_of = {n.name: n.output[0] for n in convs}
    groups = float_candidates(graph, samples, spec, probe.state)
    ref = reference_outputs(onnx_path, probe)
    dataset = nncf.Dataset(samples)

    def quantize(exclude: list[str]):
        model = ov.convert_model(str(onnx_path))
        return model, nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(samples),
                                    ignored_scope=ignored_scope(nncf, model, ov_conv_names(model, exclude, outputs_of)),
                                    advanced_parameters=advanced_parameters(int8_weights))

    def trial(exclude: list[str]):
        _, q = quantize(exclude)
        # Measured through the runtime's own backend, so the trial runs what a bundle will run.
        backend = OpenVinoBackend(model=q, device=device, threads=1, precision="int8")
        return (q, exclude), deviation(ref, probe.outputs(backend.run))

    choice = select_float(groups, trial, log)
    choice["ov_names"] = lambda model: ov_conv_names(model, choice["exclude"], outputs_of)
    choice["int8_convs"] = lambda model: int8_convs(model, outputs_of)
    log("int8: NNCF " + describe_choice(choice, len(convs)))
    return choice, {"float_candidates": groups, "kept_float": choice["kept"], "deviation": choice["measured"],
                    "deviation_measured_on": f"openvino {device}, {probe.describe()}",
                    "convolutions": {"total": len(convs)}}


def convert_ir(onnx_path: Path, out_dir: Path, precision: str, probe=None,
               validate: Callable | None = None, max_drop: float = 0.01, spec=None, device: str = "CPU",
               int8_weights: str = "7-bit first layer", log=print) -> dict:
    """Write model.xml/.bin into ``out_dir``; ``validate(compiled_model) -> {protocol: AUC}`` on labelled
    tuning footage switches on accuracy control. A bf16 bundle is the FP32 IR, compiled at bf16 by the runtime."""
    from edge_vad.runtime.backends.openvino import inference_config, inference_precision_for

    ov = _ov()
    model = ov.convert_model(str(onnx_path))
    report: dict = {"openvino": ov.get_version(), "precision": precision}
    if precision == "int8":
        nncf = _nncf()
        samples = probe.samples  # converters.quantize.Probe: calibration samples, and what trials are measured on
        choice, measured = _quantize_int8(onnx_path, probe, spec, device, int8_weights, log)
        model, _ = choice["artifact"]
        report.update(measured)
        if validate is not None:
            fp32 = ov.convert_model(str(onnx_path))
            ref = validate(ov.Core().compile_model(fp32, device, inference_config(
                device, inference_precision_for(device, "fp32"), threads=1)))

            def metric(compiled, _items) -> float:
                # 1 + the worse protocol's AUC change from FP32: NNCF's drop (initial − quantized) is then the
                # larger of the two drops, which is what the gate checks (the 1 keeps NNCF's relative drop finite).
                auc = validate(compiled)
                return 1.0 + min(auc[p] - ref[p] for p in ref)

            # One validation item: the whole labelled video, streamed in order (state needs order).
            log(f"int8: NNCF accuracy-controlled quantization (max AUC drop {max_drop} in either protocol; "
                f"FP32 on the tuning video: {', '.join(f'{k} {v:.4f}' for k, v in ref.items())})")
            model = nncf.quantize_with_accuracy_control(
                fp32, calibration_dataset=nncf.Dataset(samples), validation_dataset=nncf.Dataset([None]),
                validation_fn=metric,
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset.PERFORMANCE,
                subset_size=len(samples), ignored_scope=ignored_scope(nncf, fp32, choice["ov_names"](fp32)),
                advanced_quantization_parameters=advanced_parameters(int8_weights),
            )
            reverted = sorted(choice["int8_convs"](choice["artifact"][0]) - choice["int8_convs"](model))
            log(f"int8: accuracy control put {len(reverted)} more convolution(s) in float: {', '.join(reverted) or '-'}")
            report["mode"] = "nncf-accuracy-control"
            report["accuracy_control_reverted"] = reverted
        else:
            report["mode"] = "nncf-ptq"
        # Counted in the model that ships (a FakeQuantize on the convolution's input).
        n_int8 = len(choice["int8_convs"](model))
        report["convolutions"].update(int8=n_int8, float=report["convolutions"]["total"] - n_int8)
        report.update(preset="performance (symmetric)", quantized="convolutions only", calibration_samples=len(samples),
                      weights=int8_weights, overflow_fix=OVERFLOW_FIX[int8_weights])
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_dir / IR_XML), compress_to_fp16=(precision == "fp16"))
    return report
