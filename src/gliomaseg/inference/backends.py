"""Runtimes that turn a preprocessed batch into logits: PyTorch, or ONNX Runtime for exported models.

Both take ``(B, C, *spatial)`` float32 CPU tensors and return ``(B, K, *spatial)`` float32 CPU
logits, so the predictor, inferers, TTA and post-processing are the same whatever runs the network.
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
from ..runtime import autocast, memory_format, resolve_device

ONNX_CONFIG_KEY = "gliomaseg.config"


class TorchBackend:
    """A PyTorch network in eval mode on the run's device, with its bf16 and channels_last
    settings (the config's ``runtime`` section; ``spatial_dims`` 3 for volume networks).

    Raises:
        ConfigError: the configured device is not available.
    """

    def __init__(self, model: nn.Module, config: Config, spatial_dims: int = 2):
        self.device = resolve_device(config.runtime.device)
        self.format = memory_format(config.runtime.channels_last, spatial_dims)
        self.bf16 = config.runtime.bf16
        self.model = model.eval().to(self.device, memory_format=self.format)
        self.stride = getattr(model, "stride", 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.bf16, self.device):
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.format)
            return self.model(images).float().cpu()


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
        self.stride = 1  # the exported graph takes the network-grid size it was exported at

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(images.numpy(), dtype=np.float32)})
        return torch.from_numpy(logits)
