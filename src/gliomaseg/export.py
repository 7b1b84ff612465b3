"""``gliomaseg export``: ONNX export of a trained network, and int8 static quantization.

The ONNX graph takes ``images`` ``(batch, C, N, N)`` float32 (preprocessed as in
:mod:`gliomaseg.data.preprocessing`; ``N`` is the run's ``data.image_size``) and returns
``logits`` ``(batch, K, N, N)``; the batch axis is dynamic. Slice models of slice datasets only
(a resized, fixed-size input). The run config travels in the
model's metadata (``gliomaseg.config``), so ``--backend onnxruntime`` preprocesses exactly as
PyTorch does. Export uses ``torch.onnx.export`` and is checked with ``onnx.checker``; int8 uses
ONNX Runtime's ``quantize_static`` (QDQ format, uint8 activations, per-channel int8 weights,
MinMax calibration).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .config import Config
from .data.base import CaseRef, DatasetType, get_dataset
from .data.preprocessing import Preprocessing, stack_slices
from .errors import InputError
from .inference.backends import ONNX_CONFIG_KEY
from .models.weights import load_model, resolve_weights

OPSET = 18


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's notices that concern other models (torchvision ops, pytree API)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: str | Path | None, out: Path) -> Config:
    """Export the network of ``model`` (run folder, weights file, or ``None`` for the bundled
    model) to ``out`` as fp32 ONNX with a dynamic batch axis, checked by ``onnx.checker``.

    Returns:
        the run config stored in the file.

    Raises:
        InputError: unreadable model, or a BraTS model (not exportable yet).
    """
    import onnx

    path = resolve_weights(model)
    network, config = load_model(path)
    if get_dataset(config.data.dataset).volumetric:
        raise InputError(path, "ONNX export covers slice models of slice datasets (kaggle3m, image_folder); "
                         f"{config.data.dataset} models run with PyTorch")
    size = config.data.image_size
    example = torch.zeros(2, config.model.in_channels, size, size)
    with atomic_path(out) as tmp, _quiet_exporter():
        program = torch.onnx.export(network.float().eval(), (example,), input_names=["images"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=OPSET,
                                    dynamo=True, verbose=False)
        program.save(str(tmp))
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {ONNX_CONFIG_KEY: json.dumps(config.to_dict())})
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    return config


def calibration_batches(dataset: DatasetType, refs: list[CaseRef], config: Config, max_slices: int = 256,
                        seed: int = 0) -> list[np.ndarray]:
    """Preprocessed slices for int8 calibration: up to ``max_slices`` drawn evenly from the
    cases (read here), as ``(16, C, N, N)`` float32 batches.

    Raises:
        InputError: a case cannot be read.
    """
    rng = np.random.default_rng(seed)
    preprocessing = Preprocessing.from_config(config.data, volumetric=False)
    channels = config.model.in_channels // (2 * config.data.context_slices + 1)
    slices = []
    per_case = max(1, max_slices // max(1, len(refs)))
    for ref in refs:
        volume = preprocessing.forward(dataset.load(ref, channels).images).images
        chosen = rng.choice(volume.shape[-1], min(per_case, volume.shape[-1]), replace=False)
        slices.extend(stack_slices(volume, torch.from_numpy(chosen), config.data.context_slices).numpy())
    stacked = np.stack(slices[:max_slices]).astype(np.float32)
    return [stacked[i:i + 16] for i in range(0, len(stacked), 16)]


def quantize_int8(fp32: Path, out: Path, batches: list[np.ndarray]) -> None:
    """Static int8 quantization of an exported fp32 model, calibrated on ``batches``.

    Raises:
        InputError: no calibration data.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not batches:
        raise InputError(out, "no calibration slices for int8 quantization")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter({"images": batch} for batch in batches)

        def get_next(self):
            return next(self.items, None)

    metadata = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    with tempfile.TemporaryDirectory() as work, atomic_path(out) as tmp:
        prepared = Path(work) / "prepared.onnx"  # shapes inferred and graph optimised, as ORT advises
        quant_pre_process(str(fp32), str(prepared))
        # uint8 activations with int8 weights (U8S8) is ONNX Runtime's fast path on x86-64: here
        # 3.1x the fp32 throughput, against 1.7x for int8 activations (benchmarks/inference.py).
        quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, metadata)
        onnx.save(proto, str(tmp))
