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
from gliomaseg.data.kaggle3m import find_patients, load_patient
from gliomaseg.data.preprocessing import to_network
from gliomaseg.export import calibration_batches, export_onnx, quantize_int8
from gliomaseg.inference.backends import OnnxBackend, TorchBackend
from gliomaseg.inference.postprocess import postprocess
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics
from gliomaseg.models.weights import bundled_weights, load_model
from gliomaseg.runtime import describe_machine, set_threads
from gliomaseg.segmentation import segment

REPO = Path(__file__).resolve().parents[1]


def network_throughput(predictor: Predictor, batches) -> float:
    """Slices/s of the network alone (with its TTA) on already preprocessed batches."""
    predictor._forward(batches[0][:4])  # warm-up
    started = time.perf_counter()
    for batch in batches:
        predictor._forward(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def measure(predictor: Predictor, patients) -> tuple[float, float]:
    """(slices/s of probabilities over all patients, mean per-patient Dice after post-processing)."""
    predictor.probabilities(patients[0].images[:4])  # warm-up
    seconds, dices, slices = 0.0, [], 0
    for patient in patients:
        started = time.perf_counter()
        probabilities = predictor.probabilities(patient.images)
        seconds += time.perf_counter() - started
        slices += len(patient.images)
        mask = postprocess(probabilities >= predictor.config.inference.threshold, predictor.config.inference.postprocess)
        dices.append(overlap_metrics(mask, patient.masks)["dice"])
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
    print(f"{len(patients)} test-split patients, {sum(len(p.images) for p in patients)} slices")

    model, config = load_model(bundled_weights())
    with tempfile.TemporaryDirectory() as work:
        fp32_path, int8_path = Path(work) / "fp32.onnx", Path(work) / "int8.onnx"
        export_onnx(None, fp32_path)
        calibration = [by_id[pid] for pid in split["train"][:16]]
        quantize_int8(fp32_path, int8_path, calibration_batches(calibration, config))

        def torch_predictor(fast: bool) -> Predictor:
            run_config = load_model(bundled_weights())[1]
            run_config.train.bf16 = run_config.train.channels_last = fast
            return Predictor(TorchBackend(model, run_config), run_config)

        runtimes = {
            "PyTorch fp32 (baseline)": lambda: torch_predictor(False),
            "PyTorch bf16 + channels_last": lambda: torch_predictor(True),
            "ONNX Runtime fp32": lambda: Predictor(OnnxBackend(fp32_path), OnnxBackend(fp32_path).config),
            "ONNX Runtime int8": lambda: Predictor(OnnxBackend(int8_path), OnnxBackend(int8_path).config),
        }
        preprocessed = torch.cat([to_network(p.images, config.data).images for p in patients]).split(32)
        print(f"\n{'runtime':32s} {'TTA':5s} {'slices/s':>9s} {'x baseline':>10s} {'network/s':>9s} {'x baseline':>10s} {'Dice':>7s}")
        baseline = {}
        for name, build in runtimes.items():
            for tta in ("none", "flip"):
                predictor = build()
                predictor.config.inference.tta = tta
                rate, dice = measure(predictor, patients)
                network = network_throughput(predictor, preprocessed)
                base_rate, base_network = baseline.setdefault(tta, (rate, network))
                print(f"{name:32s} {tta:5s} {rate:9.1f} {rate / base_rate:10.2f} {network:9.1f} "
                      f"{network / base_network:10.2f} {dice:7.4f}", flush=True)

    patient = min(patients, key=lambda p: abs(len(p.images) - 60))
    folder = patient.image_files[0].parent
    print(f"\nend to end on {patient.id} ({len(patient.images)} slices): read, preprocess, infer, post-process, write PNGs")
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
