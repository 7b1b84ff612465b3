"""ONNX export of the bundled model: checker, dynamic batch, fp32 parity and int8 on real slices."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from conftest import TEST_PATIENTS, TRAIN_PATIENTS
from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
from gliomaseg.data.base import get_dataset
from gliomaseg.data.preprocessing import Preprocessing, stack_slices
from gliomaseg.export import calibration_batches, export_onnx, quantize_int8
from gliomaseg.inference.backends import OnnxBackend, TorchBackend
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled model exported to fp32 ONNX."""
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    config = export_onnx(None, path)
    return path, config


@pytest.fixture(scope="module")
def test_patient(lgg_root):
    return load_patient(scan_patient_folder(lgg_root / TEST_PATIENTS[1]))


def test_onnx_passes_checker_and_has_dynamic_batch(exported):
    """The file passes onnx.checker, keeps the config, and its batch axis is symbolic."""
    path, _ = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert any(p.key == "gliomaseg.config" for p in proto.metadata_props)
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value


def test_fp32_parity_with_pytorch(exported, test_patient):
    """ONNX Runtime fp32 probabilities match PyTorch fp32 within 1e-5 and logits within 1e-3
    wherever |logit| < 8; masks agree on >= 99.9% of pixels. The bundled LGG model is an
    ensemble, whose logits are those of a mean probability clamped at 1e-6: near the clamp a
    probability difference of 1e-7 moves the logit by 0.1, so saturated logits are compared
    as probabilities."""
    path, config = exported
    torch_model = Predictor.from_path(None).backend.model
    config.runtime.bf16 = False  # compare against PyTorch in fp32
    reference = TorchBackend(torch_model, config)
    onnx_backend = OnnxBackend(path)
    volume = Preprocessing.from_config(config.data, volumetric=False).forward(test_patient.images).images
    # (C, N, N, S) -> network inputs (S, C', N, N): each slice with its neighbours for a 2.5D model
    images = stack_slices(volume, torch.arange(volume.shape[-1]), config.data.context_slices).contiguous()
    for batch in (images[:1], images[:7], images):  # several batch sizes through the dynamic axis
        expected, got = reference(batch), onnx_backend(batch)
        assert got.shape == expected.shape
        assert float((torch.sigmoid(got) - torch.sigmoid(expected)).abs().max()) < 1e-5
        unsaturated = expected.abs() < 8
        assert float(torch.where(unsaturated, (got - expected).abs(), 0).max()) < 1e-3
    assert unsaturated.sum() > 1000  # the whole volume: the logits compared include the tumor's edge
    torch_mask = Predictor(torch_model, config).predict(test_patient).label
    onnx_mask = Predictor(onnx_backend, onnx_backend.config).predict(test_patient).label
    assert (torch_mask == onnx_mask).mean() >= 0.999


def test_int8_model_segments_close_to_fp32(exported, lgg_root, test_patient, tmp_path):
    """An int8 model calibrated on train-split slices gives nearly the fp32 per-patient Dice."""
    path, config = exported
    calibration = [scan_patient_folder(lgg_root / pid) for pid in TRAIN_PATIENTS]
    int8 = tmp_path / "int8.onnx"
    quantize_int8(path, int8, calibration_batches(get_dataset("kaggle3m"), calibration, config, max_slices=48))
    assert int8.stat().st_size < 0.5 * path.stat().st_size
    fp32_backend, int8_backend = OnnxBackend(path), OnnxBackend(int8)
    dice = {}
    for name, backend in (("fp32", fp32_backend), ("int8", int8_backend)):
        mask = Predictor(backend, backend.config).predict(test_patient).label
        dice[name] = overlap_metrics(mask, test_patient.label)["dice"]
    assert dice["int8"] >= dice["fp32"] - 0.05, dice
    assert np.isfinite(list(dice.values())).all()


def test_cli_export_refuses_int8_without_calibration_and_overwrite(tmp_path):
    """`gliomaseg export` gives one error line: --int8 needs calibration; an existing file is kept."""
    import subprocess
    import sys
    from pathlib import Path

    gliomaseg = str(Path(sys.executable).parent / "gliomaseg")
    out = tmp_path / "model.onnx"
    done = subprocess.run([gliomaseg, "export", "--out", str(out), "--int8"], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--calibration" in done.stderr and not out.exists()
    out.write_bytes(b"mine")
    done = subprocess.run([gliomaseg, "export", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 1 and "--overwrite" in done.stderr
    assert out.read_bytes() == b"mine"


def test_cli_segment_with_onnxruntime_backend_matches_torch(exported, patient_dir, tmp_path):
    """`segment --backend onnxruntime` writes the same outputs as the torch backend, masks >= 99.5% equal."""
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    gliomaseg = str(Path(sys.executable).parent / "gliomaseg")
    path, _ = exported
    runs = {"torch": [], "onnxruntime": ["--backend", "onnxruntime", "--model", str(path)]}
    masks = {}
    for name, options in runs.items():
        out = tmp_path / name
        done = subprocess.run([gliomaseg, "segment", str(patient_dir), "--out", str(out), *options], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        files = sorted((out / patient_dir.name).glob("*_mask.png"))
        masks[name] = np.stack([np.asarray(Image.open(f)) for f in files])
        assert (out / "results.jsonl").is_file()
    assert masks["torch"].shape == masks["onnxruntime"].shape
    assert (masks["torch"] == masks["onnxruntime"]).mean() >= 0.995
    done = subprocess.run([gliomaseg, "segment", str(patient_dir), "--out", str(tmp_path / "x"), "--backend", "onnxruntime"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr and ".onnx" in done.stderr
