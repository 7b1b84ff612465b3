"""Cross-field checks of a run config against the network registry and the dataset type, run
when the config is loaded (``train``), before any data is read."""

from __future__ import annotations

import torch

from ..config import Config
from ..data.base import get_dataset
from ..errors import ConfigError
from ..models.registry import create_model, spatial_dims
from ..models.weights import check_initial_weights
from .deep_supervision import supports_deep_supervision


def check_config(config: Config, source: str = "config") -> None:
    """Check that the network, the dataset type and the data and inference settings fit.

    Rules: the network exists; a 3D network needs a volume dataset; ``model.in_channels`` is
    the dataset's channels times ``2 * data.context_slices + 1`` (slice networks);
    ``model.out_channels`` is the dataset's number of regions; ``data.landmarks`` (if fitted)
    has one row per image channel; slice datasets are resized
    (``data.image_size`` > 0) to a multiple of the network's stride; volume datasets are not
    resized, and their ``data.patch_size`` is a multiple of the stride in-plane (all axes
    for 3D networks) with a depth of 1 for slice networks; ``flip+rot90`` TTA is for slice
    networks; ``train.tumor_sampling: region`` is for volume datasets;
    ``train.deep_supervision`` is at most the network's decoder stages above full resolution
    (none for networks that are not U-shaped); ``model.init_weights`` holds the same network;
    ``model.members`` is 1 (an ensemble is joined from trained runs, not trained).

    Raises:
        ConfigError: naming ``source`` and the keys that disagree.
    """
    try:
        dims = spatial_dims(config.model.name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: model.name: {exc}") from None
    if config.model.members != 1:
        raise ConfigError(f"{source}: model.members is {config.model.members}: training builds one network; "
                          "train each member (e.g. `gliomaseg cv`), then join them with `gliomaseg ensemble`")
    with torch.device("meta"):
        network = create_model(config.model)
    stride = getattr(network, "stride", 1)
    most = supports_deep_supervision(network)
    if config.train.deep_supervision > most:
        raise ConfigError(f"{source}: train.deep_supervision {config.train.deep_supervision}: {config.model.name} gives "
                          + (f"at most {most} auxiliary output(s)" if most else
                             "none (deep supervision is for the U-shaped unet, resunet and residual_inception_unet)"))
    if dims == 3 and config.inference.tta == "flip+rot90":
        raise ConfigError(f"{source}: inference.tta flip+rot90 is for slice networks; {config.model.name} is 3D")
    if config.model.init_weights:
        check_initial_weights(config)
    if config.data.dataset == "auto":
        return
    dataset = get_dataset(config.data.dataset)
    stack = 1 if dims == 3 else 2 * config.data.context_slices + 1
    if dims == 3 and not dataset.volumetric:
        raise ConfigError(f"{source}: model.name {config.model.name} is a 3D network; {dataset.name} holds slices (use a 2D network)")
    if config.model.in_channels % stack or not dataset.accepts_channels(config.model.in_channels // stack):
        raise ConfigError(f"{source}: model.in_channels is {config.model.in_channels}, but {dataset.name} images have "
                          f"{len(dataset.channels)} channel(s) ({', '.join(dataset.channels)})"
                          + (f" x {stack} slices (data.context_slices {config.data.context_slices})" if stack > 1 else ""))
    if config.data.landmarks and len(config.data.landmarks) != config.model.in_channels // stack:
        raise ConfigError(f"{source}: data.landmarks has {len(config.data.landmarks)} row(s); the network takes "
                          f"{config.model.in_channels // stack} channel(s), one row each")
    if config.model.out_channels != len(dataset.labels.regions):
        raise ConfigError(f"{source}: model.out_channels is {config.model.out_channels}, but {dataset.name} has "
                          f"{len(dataset.labels.regions)} region(s) ({', '.join(dataset.labels.regions)})")
    if dataset.volumetric:
        if config.data.image_size:
            raise ConfigError(f"{source}: data.image_size resizes slices; {dataset.name} volumes keep their voxel grid: "
                              "set it to 0 and choose the training window with data.patch_size")
        patch = config.data.patch_size
        if dims == 2 and patch[2] != 1:
            raise ConfigError(f"{source}: data.patch_size {list(patch)}: a slice network trains on windows of depth 1")
        if any(side % stride for side in patch[:dims]):
            raise ConfigError(f"{source}: data.patch_size {list(patch)}: {config.model.name} needs sides divisible by {stride}")
    elif config.train.tumor_sampling == "region":
        raise ConfigError(f"{source}: train.tumor_sampling region draws windows per region of a volume; "
                          f"{dataset.name} holds slices: use slice or case")
    elif not config.data.image_size or config.data.image_size % stride:
        raise ConfigError(f"{source}: data.image_size {config.data.image_size}: {config.model.name} needs a side "
                          f"divisible by {stride} (slices are resized to it)")
