"""The bundled pretrained models load without pickle, carry their cards and segment real patients well."""

from __future__ import annotations

import numpy as np
from safetensors import safe_open

from conftest import TEST_PATIENTS
from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics
from gliomaseg.models.weights import bundled_weights

# Floor for the mean per-patient Dice of the 3 test-split patients checked here. Since LGG 2.3.0
# the bundled model trains on all 90 shared patients, these 3 included, so this checks the
# pipeline end to end (reading, preprocessing, both members, resizing back, post-processing),
# not accuracy on unseen patients: that is the model card's cross-validation. Per-patient Dice
# spreads roughly +-0.1 (small tumors score lowest); 0.75 is far above what an untrained or
# broken pipeline gives (< 0.3). 2.2.0, which never saw these 3, cleared it as well.
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
    """Per-patient Dice of the bundled model on 3 test-split patients clears the floor."""
    predictor = Predictor.from_path(None)
    dices = []
    for pid in TEST_PATIENTS:
        case = load_patient(scan_patient_folder(lgg_root / pid), predictor.in_channels)
        dices.append(overlap_metrics(predictor.predict(case).label, case.label)["dice"])
    assert min(dices) >= SINGLE_PATIENT_FLOOR, dices
    assert np.mean(dices) >= MEAN_DICE_FLOOR, dices


CARD_FIELDS = {"name", "version", "dataset", "input_channels", "expected_input", "output_labels",
               "network", "recipe", "held_out", "weights_licence"}


def test_every_bundled_model_has_a_card_and_is_the_default_of_its_dataset_type():
    """Each bundled file carries its model card (every field of docs/cards), its network takes
    the card's channels, and a model without --model follows the input's dataset type."""
    from gliomaseg.data.base import get_dataset
    from gliomaseg.models.weights import BUNDLED, DEFAULT_BUNDLED, bundled_models, read_config, resolve_weights

    cards = bundled_models()
    assert set(cards) == set(BUNDLED)
    for name, card in cards.items():
        assert CARD_FIELDS <= set(card), (name, CARD_FIELDS - set(card))
        assert card["name"] == name
        config = read_config(bundled_weights(name))
        dataset = get_dataset(config.data.dataset)
        assert DEFAULT_BUNDLED[dataset.name] == name
        assert resolve_weights(None, dataset.name) == bundled_weights(name)


def test_t1ce_model_beats_the_lgg_model_on_figshare_test_slices():
    """The fine-tuned T1-CE model, on the 7 test slices of splits/figshare.json (never seen in
    training): its mean per-slice Dice beats the FLAIR-trained LGG model's on the same slices,
    and clears 0.4 (its model card reports 0.489; the LGG model scores 0.24)."""
    import json

    from conftest import REPO, SHARED
    from gliomaseg.data.base import get_dataset

    dataset = get_dataset("image_folder")
    test = set(json.loads((REPO / "splits" / "figshare.json").read_text())["test"])
    refs = [ref for ref in dataset.find(SHARED / "figshare") if ref.id in test]
    assert len(refs) == len(test)
    means = {}
    for name in ("t1ce", "lgg"):
        predictor = Predictor.from_path(name)
        dices = []
        for ref in refs:
            case = dataset.load(ref, predictor.in_channels)
            dices.append(overlap_metrics(predictor.predict(case).label, case.label)["dice"])
        means[name] = float(np.mean(dices))
    assert means["t1ce"] > means["lgg"] and means["t1ce"] >= 0.4, means
