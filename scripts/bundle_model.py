"""Copy a run's best checkpoint into the package as the bundled model of its dataset (LGG or BraTS).

The inference settings (test-time augmentation, post-processing) are those chosen by the
validation measurement in docs/MODEL_CARD.md and are written into the file's config, so
``gliomaseg segment`` without options uses them.

    python scripts/bundle_model.py runs/lgg_unet16_v2 --tta none --postprocess largest-3d
    python scripts/bundle_model.py runs/brats_unet2d_final --checkpoint last --tta none --postprocess min-size:1000
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from gliomaseg.inference.postprocess import validate_postprocess
from gliomaseg.models.weights import bundled_weights, load_model, read_metadata, resolve_weights, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder from `gliomaseg train`")
    parser.add_argument("--tta", default="flip")
    parser.add_argument("--postprocess", default="largest-3d")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="best validation epoch, or the last epoch (when the validation set is too small to rank epochs)")
    args = parser.parse_args()
    validate_postprocess(args.postprocess)
    weights = resolve_weights(args.run) if args.checkpoint == "best" else args.run / "last.safetensors"
    model, config = load_model(weights)
    config.inference.tta, config.inference.postprocess = args.tta, args.postprocess
    with (args.run / "metrics.csv").open() as handle:
        history = list(csv.DictReader(handle))
    epoch = read_metadata(weights)["epoch"]
    val_dice = float(history[epoch - 1]["val_dice_mean"])
    target = bundled_weights(config.data.dataset)
    save_model(model, config, target, source_run=args.run.name, epoch=epoch, checkpoint=args.checkpoint,
               val_dice_mean=val_dice, training_minutes=float(history[-1]["minutes"]),
               epochs_trained=len(history))
    print(f"{target}: {args.checkpoint} epoch {epoch} of {len(history)}, validation Dice {val_dice:.4f}")


if __name__ == "__main__":
    main()
