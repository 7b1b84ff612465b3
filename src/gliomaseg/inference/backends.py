"""Runtimes that turn a preprocessed batch into logits: PyTorch, or ONNX Runtime for exported models.

Both take ``(B, C, N, N)`` float32 tensors and return ``(B, 1, N, N)`` float32 logits, so the
predictor, TTA and post-processing are the same whatever runs the network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..errors import InputError
from ..runtime import autocast, memory_format

ONNX_CONFIG_KEY = "gliomaseg.config"
BACKENDS = ("torch", "onnxruntime")


class TorchBackend:
    """A PyTorch network in eval mode, with the run's bf16 and channels_last settings
    (``spatial_dims`` 3 for volume networks)."""

    def __init__(self, model: nn.Module, config: Config, spatial_dims: int = 2):
        self.format = memory_format(config.train.channels_last, spatial_dims)
        self.bf16 = config.train.bf16
        self.model = model.eval().to(memory_format=self.format)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.bf16):
            return self.model(images.contiguous(memory_format=self.format)).float()


class OnnxBackend:
    """An exported ``.onnx`` network (fp32 or int8) run by ONNX Runtime on the CPU.

    Args:
        path: ONNX file written by ``gliomaseg export``.
        threads: intra-op threads (0: one per core).

    Raises:
        InputError: the file cannot be loaded by ONNX Runtime or lacks the gliomaseg config.
    """

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  ORT raises its own untyped errors on bad files
            raise InputError(self.path, f"not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if ONNX_CONFIG_KEY not in metadata:
            raise InputError(self.path, "ONNX model without a gliomaseg config in its metadata; export it with `gliomaseg export`")
        self.config = Config.from_dict(json.loads(metadata[ONNX_CONFIG_KEY]), source=str(self.path))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(images.numpy(), dtype=np.float32)})
        return torch.from_numpy(logits)
