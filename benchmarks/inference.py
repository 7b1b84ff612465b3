"""Inference speed and accuracy of each runtime, side by side in one run on the same patients.

For PyTorch fp32 (the baseline: no bf16, no channels_last), PyTorch with the shipped settings
(bf16 autocast + channels_last), ONNX Runtime fp32 and ONNX Runtime int8 (calibrated on
train-split slices only), each without and with flip TTA, prints slices/s through
``Predictor.probabilities`` (preprocessing included), slices/s of the network alone on
preprocessed batches, mean per-patient Dice on the test split, and speed ratios to the baseline. Then the end-to-end time of the default ``segment`` on a
60-slice-class patient (new process: import, model load, read, preprocess, infer,
post-process, write PNGs).

    python benchmarks/inference.py --data cache/lgg/kaggle_3m [--patients 13]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmark import time_segment_command
from gliomaseg.data.base import get_dataset
from gliomaseg.data.kaggle3m import find_patients, load_patient
from gliomaseg.data.preprocessing import Preprocessing
from gliomaseg.export import calibration_batches, export_onnx, quantize_int8
from gliomaseg.inference.backends import OnnxBackend
from gliomaseg.inference.postprocess import to_label
from gliomaseg.inference.predictor import Predictor
from gliomaseg.inference.tta import apply_transform, tta_transforms
from gliomaseg.metrics import overlap_metrics
from gliomaseg.models.weights import bundled_weights, load_model
from gliomaseg.runtime import describe_machine, set_threads
from gliomaseg.segmentation import segment

REPO = Path(__file__).resolve().parents[1]


def network_throughput(predictor: Predictor, volumes: list[torch.Tensor]) -> float:
    """Slices/s of the network alone (with its TTA) on already preprocessed ``(C, N, N, S)``
    volumes: the predictor's inferer (batches of ``inference.batch_size`` slices) once per TTA transform."""
    inference = predictor.config.inference
    transforms = tta_transforms(inference.tta, inference.mirror_axes, predictor.dims)

    def run(volume: torch.Tensor) -> None:
        for transform in transforms:
            predictor.inferer(apply_transform(volume, transform), predictor.backend)

    run(volumes[0][..., :4])  # warm-up
    started = time.perf_counter()
    for volume in volumes:
        run(volume)
    return sum(v.shape[-1] for v in volumes) / (time.perf_counter() - started)


def measure(predictor: Predictor, patients) -> tuple[float, float]:
    """(slices/s of probabilities over all patients, mean per-patient Dice after post-processing)."""
    predictor.probabilities(patients[0].images[..., :4])  # warm-up
    inference = predictor.config.inference
    seconds, dices, slices = 0.0, [], 0
    for patient in patients:
        started = time.perf_counter()
        probabilities = predictor.probabilities(patient.images)
        seconds += time.perf_counter() - started
        slices += patient.images.shape[-1]
        label = to_label(probabilities, patient.labels, inference.threshold, inference.postprocess)
        dices.append(overlap_metrics(label, patient.label)["dice"])
    return slices / seconds, float(np.mean(dices))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "lgg.json")
    parser.add_argument("--patients", type=int, default=13, help="test-split patients to use")
    args = parser.parse_args()
    set_threads(0)
    print(f"machine: {describe_machine()}")
    split = json.loads(args.split.read_text())
    by_id = {p.id: p for p in find_patients(args.data)}
    patients = [load_patient(by_id[pid]) for pid in split["test"][: args.patients]]
    print(f"{len(patients)} test-split patients, {sum(p.images.shape[-1] for p in patients)} slices")

    model, config = load_model(bundled_weights())
    with tempfile.TemporaryDirectory() as work:
        fp32_path, int8_path = Path(work) / "fp32.onnx", Path(work) / "int8.onnx"
        export_onnx(None, fp32_path)
        calibration = [by_id[pid] for pid in split["train"][:16]]
        quantize_int8(fp32_path, int8_path, calibration_batches(get_dataset("kaggle3m"), calibration, config))

        def torch_predictor(fast: bool, tta: str | None = None) -> Predictor:
            """The bundled model in PyTorch; ``tta`` ``None`` keeps the model's own."""
            run_config = load_model(bundled_weights())[1]
            run_config.runtime.bf16 = run_config.runtime.channels_last = fast
            run_config.inference.tta = tta or run_config.inference.tta
            return Predictor(model, run_config)

        def onnx_predictor(path: Path, tta: str) -> Predictor:
            backend = OnnxBackend(path)
            backend.config.inference.tta = tta
            return Predictor(backend, backend.config)

        runtimes = {
            "PyTorch fp32 (baseline)": lambda tta: torch_predictor(False, tta),
            "PyTorch bf16 + channels_last": lambda tta: torch_predictor(True, tta),
            "ONNX Runtime fp32": lambda tta: onnx_predictor(fp32_path, tta),
            "ONNX Runtime int8": lambda tta: onnx_predictor(int8_path, tta),
        }
        preprocessing = Preprocessing.from_config(config.data, volumetric=False)
        preprocessed = [preprocessing.forward(p.images).images for p in patients]
        print(f"\n{'runtime':32s} {'TTA':5s} {'slices/s':>9s} {'x baseline':>10s} {'network/s':>9s} {'x baseline':>10s} {'Dice':>7s}")
        baseline = {}
        for name, build in runtimes.items():
            for tta in ("none", "flip"):
                predictor = build(tta)
                rate, dice = measure(predictor, patients)
                network = network_throughput(predictor, preprocessed)
                base_rate, base_network = baseline.setdefault(tta, (rate, network))
                print(f"{name:32s} {tta:5s} {rate:9.1f} {rate / base_rate:10.2f} {network:9.1f} "
                      f"{network / base_network:10.2f} {dice:7.4f}", flush=True)

    patient = min(patients, key=lambda p: abs(p.images.shape[-1] - 60))
    folder = patient.sources[0].parent
    print(f"\nend to end on {patient.id} ({patient.images.shape[-1]} slices): read, preprocess, infer, post-process, write PNGs")
    with tempfile.TemporaryDirectory() as out:
        seconds = {}
        for name, fast in (("PyTorch fp32 (baseline)", False), ("default settings", True)):
            predictor = torch_predictor(fast)
            segment([folder], Path(out), predictor, overwrite=True)  # warm-up
            started = time.perf_counter()
            segment([folder], Path(out), predictor, overwrite=True)
            seconds[name] = time.perf_counter() - started
            print(f"  in process, {name:24s} {seconds[name]:5.2f} s  {seconds['PyTorch fp32 (baseline)'] / seconds[name]:4.2f}x")
    print(f"  `gliomaseg segment` in a new process (imports, model load included): {time_segment_command(folder):.2f} s")


if __name__ == "__main__":
    main()
