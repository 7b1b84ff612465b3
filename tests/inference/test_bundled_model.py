"""The bundled pretrained model loads without pickle and segments unseen test-split patients well."""

from __future__ import annotations

import numpy as np
from safetensors import safe_open

from conftest import TEST_PATIENTS
from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics
from gliomaseg.models.weights import bundled_weights

# Floor for the mean per-patient Dice of the 3 test-split patients checked here. The model card
# reports the whole 13-patient test split; across those patients per-patient Dice spreads
# roughly +-0.1 around the mean (small tumors score lowest), so 3 patients can sit well below the
# split mean. 0.75 is far above what an untrained or broken pipeline gives (< 0.3) and below the
# worst 3-patient mean we expect from a model that meets the 0.85 split target.
MEAN_DICE_FLOOR = 0.75
SINGLE_PATIENT_FLOOR = 0.5


def test_bundled_weights_are_safetensors_under_20_mb():
    """The shipped file is a safetensors file with its config in the metadata, at most 20 MB."""
    path = bundled_weights()
    assert path.is_file()
    assert path.stat().st_size <= 20 * 1024 * 1024
    with safe_open(str(path), framework="pt") as handle:
        assert "gliomaseg.config" in handle.metadata()


def test_bundled_model_dice_on_test_patients(lgg_root):
    """Per-patient Dice on 3 test-split patients (never seen in training) clears the floor."""
    predictor = Predictor.from_path(None)
    dices = []
    for pid in TEST_PATIENTS:
        case = load_patient(scan_patient_folder(lgg_root / pid), predictor.in_channels)
        dices.append(overlap_metrics(predictor.predict(case).label, case.label)["dice"])
    assert min(dices) >= SINGLE_PATIENT_FLOOR, dices
    assert np.mean(dices) >= MEAN_DICE_FLOOR, dices
