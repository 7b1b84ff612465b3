"""Copy a run's checkpoint into the package as a bundled model, with its model card.

The inference settings (test-time augmentation, post-processing, threshold) are those chosen by
the validation or cross-validation measurements in docs/MODEL_CARD.md and are written into the file's config, so
``gliomaseg segment`` without options uses them. The card (docs/cards/NAME.yaml: version,
dataset, input channels, expected input, output labels, network, recipe, held-out figures,
licence of the weights) goes into the file's metadata, listed by ``gliomaseg models``.

    python scripts/bundle_model.py runs/lgg_unet16_v2 --card docs/cards/lgg.yaml --tta none --postprocess largest-3d
    python scripts/bundle_model.py runs/brats_all10 --card docs/cards/brats.yaml --tta none --postprocess min-size:1000 --threshold 0.3   # a poly run: its last weights
    python scripts/bundle_model.py runs/brats_unet2d_final --card docs/cards/brats.yaml --checkpoint last --tta none --postprocess min-size:1000
    python scripts/bundle_model.py src/gliomaseg/weights/lgg_unet.safetensors --card docs/cards/lgg.yaml   # refresh a card
    python scripts/bundle_model.py src/gliomaseg/weights/brats_model.safetensors --card docs/cards/brats.yaml --threshold 0.3
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import yaml

from gliomaseg.config import parse_threshold
from gliomaseg.errors import ConfigError
from gliomaseg.models.weights import BUNDLED, bundled_weights, load_model, read_metadata, resolve_weights, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder from `gliomaseg train`, or a weights file (keeps its metadata)")
    parser.add_argument("--card", type=Path, required=True, help="model card YAML; its `name` is the bundled name")
    parser.add_argument("--tta", default=None, help="default: keep the checkpoint's")
    parser.add_argument("--postprocess", default=None, help="default: keep the checkpoint's")
    parser.add_argument("--threshold", default=None,
                        help="0.3, or one per region in the model's order (0.3,0.3,0.5); default: keep the checkpoint's")
    parser.add_argument("--checkpoint", choices=("best", "last"), default=None,
                        help="default: the run's model (last epoch of a poly run, else best validation epoch); "
                             "last: when the validation set is too small to rank epochs")
    args = parser.parse_args()
    card = yaml.safe_load(args.card.read_text())
    if card["name"] not in BUNDLED:
        parser.error(f"{card['name']}: add it to BUNDLED in src/gliomaseg/models/weights.py first")
    weights = args.run if args.run.is_file() else (resolve_weights(args.run) if args.checkpoint is None
                                                   else args.run / f"{args.checkpoint}.safetensors")
    model, config = load_model(weights)
    config.inference.tta = args.tta or config.inference.tta
    config.inference.postprocess = args.postprocess or config.inference.postprocess
    try:
        config.inference.threshold = config.inference.threshold if args.threshold is None else parse_threshold(args.threshold)
        config.check(str(weights))  # the chosen tta, post-processing and threshold
    except ConfigError as exc:
        parser.error(str(exc))
    metadata = {k: v for k, v in read_metadata(weights).items() if k not in ("config", "card")}
    if args.run.is_dir():
        with (args.run / "metrics.csv").open() as handle:
            history = list(csv.DictReader(handle))
        epoch = metadata["epoch"]
        val_dice = float(history[epoch - 1]["val_dice_mean"])  # NaN: trained without validation cases
        metadata = dict(source_run=args.run.name, epoch=epoch, checkpoint=weights.stem,
                        val_dice_mean=None if math.isnan(val_dice) else val_dice,
                        training_minutes=float(history[-1]["minutes"]), epochs_trained=len(history))
    target = bundled_weights(card["name"])
    save_model(model, config, target, card=card, **metadata)
    print(f"{target}: {card['name']} {card['version']}, {metadata}")


if __name__ == "__main__":
    main()
