"""Config checks when a config is loaded: ranges (Config.check), cross-field rules against the
network registry and the dataset types (check_config), overrides and migration of old files."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from gliomaseg.config import Config, apply_overrides, load_config, migrate
from gliomaseg.errors import ConfigError
from gliomaseg.training.checks import check_config


def _config(**sections) -> Config:
    return Config.from_dict(sections)


@pytest.mark.parametrize("raw, key", [
    ({"train": {"lr": -1e-3}}, "train.lr"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"train": {"tumor_fraction": 1.5}}, "train.tumor_fraction"),
    ({"train": {"tumor_sampling": "lesion"}}, "train.tumor_sampling"),
    ({"augment": {"scale": [1.2, 0.8]}}, "augment.scale"),
    ({"augment": {"gamma": 1.3}}, "augment.gamma"),
    ({"augment": {"gamma_range": [0.0, 1.5]}}, "augment.gamma_range"),
    ({"augment": {"bias_field": -0.1}}, "augment.bias_field"),
    ({"augment": {"bias_field_coeff": -0.2}}, "augment.bias_field_coeff"),
    ({"augment": {"elastic": 1.5}}, "augment.elastic"),
    ({"augment": {"elastic_sigma": -1}}, "augment.elastic_sigma"),
    ({"inference": {"threshold": 2.0}}, "inference.threshold"),
    ({"inference": {"threshold": [0.3, 1.2, 0.5]}, "model": {"out_channels": 3}}, "inference.threshold"),
    ({"inference": {"threshold": [0.3, 0.5]}, "model": {"out_channels": 3}}, "inference.threshold"),
    ({"inference": {"tta": "mirror"}}, "inference.tta"),
    ({"inference": {"postprocess": "min-size:big"}}, "inference.postprocess"),
    ({"runtime": {"device": "gpu"}}, "runtime.device"),
    ({"data": {"patch_size": [64, 0, 64]}}, "data.patch_size"),
    ({"train": {"schedule": "cosine"}}, "train.schedule"),
    ({"train": {"val_every": 0}}, "train.val_every"),
    ({"train": {"val_every": 4}}, "train.val_every"),  # plateau needs every epoch's validation
    ({"model": {"members": 0}}, "model.members"),
    ({"model": {"members": 2, "member_sizes": [128]}, "data": {"image_size": 192}}, "model.member_sizes"),
    ({"model": {"members": 2, "member_sizes": [128, 256]}, "data": {"image_size": 192}}, "model.member_sizes"),
    ({"train": {"deep_supervision": -1}}, "train.deep_supervision"),
])
def test_out_of_range_values_are_refused_naming_the_key(raw, key, tmp_path):
    """A value of the right type but out of range fails when the file is read, naming the key."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize("sections, words", [
    ({"model": {"name": "unet3d", "in_channels": 3}, "data": {"dataset": "kaggle3m", "image_size": 64}}, "3D network"),
    ({"model": {"in_channels": 4}, "data": {"dataset": "kaggle3m", "image_size": 64}}, "model.in_channels is 4"),
    ({"model": {"in_channels": 3}, "data": {"dataset": "kaggle3m", "image_size": 64, "context_slices": 1}}, "x 3 slices"),
    ({"model": {"out_channels": 3}, "data": {"dataset": "kaggle3m", "image_size": 64}}, "model.out_channels is 3"),
    ({"model": {"width": 8}, "data": {"dataset": "kaggle3m", "image_size": 100}}, "divisible by 16"),
    ({"model": {"width": 8}, "data": {"dataset": "kaggle3m"}}, "data.image_size 0"),
    ({"model": {"in_channels": 4, "out_channels": 3}, "data": {"dataset": "brats", "image_size": 160}, "runtime": {}},
     "data.image_size resizes"),
    ({"model": {"in_channels": 4, "out_channels": 3}, "data": {"dataset": "brats", "patch_size": [64, 64, 64]}}, "depth 1"),
    ({"model": {"name": "unet3d", "in_channels": 4, "out_channels": 3}, "data": {"dataset": "brats", "patch_size": [60, 64, 64]}},
     "divisible by 16"),
    ({"model": {"name": "unet3d", "in_channels": 4, "out_channels": 3}, "data": {"dataset": "brats", "patch_size": [64, 64, 64]},
      "inference": {"tta": "flip+rot90"}}, "flip+rot90"),
    ({"model": {"members": 5}, "data": {"dataset": "kaggle3m", "image_size": 64}}, "gliomaseg ensemble"),
    ({"data": {"dataset": "kaggle3m", "image_size": 64}, "train": {"tumor_sampling": "region"}}, "per region of a volume"),
    ({"data": {"dataset": "kaggle3m", "image_size": 64}, "train": {"deep_supervision": 4}}, "at most 3 auxiliary"),
    ({"model": {"name": "attention_resunet"}, "data": {"dataset": "kaggle3m", "image_size": 64}, "train": {"deep_supervision": 1}},
     "deep supervision is for the U-shaped"),
])
def test_cross_field_rules(sections, words):
    """Each rule between network, dataset type and data settings fails with a message naming it."""
    with pytest.raises(ConfigError, match=words.replace("+", r"\+")):
        check_config(_config(**sections), "my.yaml")


def test_shipped_configs_pass_the_cross_checks():
    """Every recipe in configs/ satisfies the cross-field rules for its dataset type."""
    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = load_config(path)
        if config.data.dataset == "auto":
            config.data.dataset = "kaggle3m"
        check_config(config, str(path))


def test_set_overrides_are_typed_and_checked(tmp_path):
    """--set section.key=value overrides go through the same type and range checks as the file."""
    path = REPO / "configs" / "lgg_unet16.yaml"
    config = load_config(path, ["train.lr=3e-4", "augment.scale=[0.8, 1.2]", "runtime.threads=1"])
    assert config.train.lr == pytest.approx(3e-4) and config.augment.scale == (0.8, 1.2) and config.runtime.threads == 1
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(path, ["train.lr=-1"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(path, ["train.learning_rate=1e-3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["lr=1e-3"])


def test_configs_of_version_0_1_are_migrated():
    """A 0.1 config: bf16/channels_last/threads move to runtime, lgg becomes kaggle3m, a BraTS
    slice network's image_size (its crop) becomes patch_size (S, S, 1)."""
    old = {"model": {"name": "unet", "in_channels": 12, "out_channels": 3},
           "data": {"dataset": "brats", "image_size": 160, "context_slices": 1},
           "train": {"bf16": False, "channels_last": True, "threads": 2, "lr": 1e-3}}
    config = Config.from_dict(old)
    assert (config.runtime.bf16, config.runtime.channels_last, config.runtime.threads) == (False, True, 2)
    assert config.data.patch_size == (160, 160, 1) and config.data.image_size == 0
    check_config(config)
    assert Config.from_dict({"data": {"dataset": "lgg"}}).data.dataset == "kaggle3m"
    assert migrate(config.to_dict()) == config.to_dict()  # current configs pass unchanged


def test_input_channels_must_match_sequences_and_context():
    """A slice network on BraTS with one neighbour each side takes 4 sequences x 3 slices = 12
    channels, not 4 (the bank's channel check, moved here from the BraTS banks)."""
    config = _config(model={"name": "unet", "in_channels": 4, "out_channels": 3},
                     data={"dataset": "brats", "patch_size": [64, 64, 1], "context_slices": 1})
    with pytest.raises(ConfigError, match=r"in_channels is 4, but brats images have 4 channel\(s\) .* x 3 slices"):
        check_config(config)
    config.model.in_channels = 12
    check_config(config)


def test_init_weights_must_hold_the_same_network():
    """Fine-tuning from a bundled model: the LGG model is an ensemble of two networks, so the
    member to start from must be named (model.init_member), and a single network (t1ce) takes
    none; a config whose network differs from the member's (here width 32 against 16, or 1
    input channel) is refused when the config is checked, before any data is read; a matching
    config passes and gets exactly the chosen member's weights."""
    import torch

    from gliomaseg.models.registry import create_model
    from gliomaseg.models.weights import bundled_weights, load_initial_weights, load_model

    data = {"dataset": "kaggle3m", "image_size": 192, "context_slices": 1}
    for member in (-1, 2):
        with pytest.raises(ConfigError, match=r"model\.init_weights 'lgg' is an ensemble of 2 networks: choose the one "
                                              r"to start from with model\.init_member \(0 to 1\)"):
            check_config(_config(model={"in_channels": 9, "width": 16, "init_weights": "lgg", "init_member": member},
                                 data=data))
    with pytest.raises(ConfigError, match=r"model\.init_member is 0, but model\.init_weights 't1ce' is a single network"):
        check_config(_config(model={"in_channels": 3, "width": 16, "init_weights": "t1ce", "init_member": 0},
                             data={"dataset": "image_folder", "image_size": 256}))
    with pytest.raises(ConfigError, match=r"model\.init_weights 'lgg'.*\('unet', 9, 1, 16\) on 3 stacked slices, "
                                          r"the config asks for \('unet', 9, 1, 32\)"):
        check_config(_config(model={"in_channels": 9, "width": 32, "init_weights": "lgg", "init_member": 1}, data=data))
    with pytest.raises(ConfigError, match=r"the config asks for \('unet', 1, 1, 16\)"):
        check_config(_config(model={"in_channels": 1, "width": 16, "init_weights": "lgg", "init_member": 1},
                             data={"dataset": "image_folder", "image_size": 160}))
    ensemble, _ = load_model(bundled_weights("lgg"))
    for member in (0, 1):
        config = _config(model={"in_channels": 9, "width": 16, "init_weights": "lgg", "init_member": member}, data=data)
        check_config(config)
        model = create_model(config.model)
        load_initial_weights(model, config)
        for key, value in ensemble.members[member].state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
    first, second = (next(iter(member.state_dict().values())) for member in ensemble.members)
    assert not torch.equal(first, second)  # the members differ: the index matters


def test_a_25d_source_folds_into_a_one_slice_network(lgg_root):
    """The 2.5D LGG model's 192-px member (3 slices x 3 sequences) starts a 3-channel one-slice network (the
    T1-CE recipe, configs/t1ce_finetune.yaml): on real slices the folded network gives the
    2.5D model's logits for each slice given alone; every other weight is copied as it is."""
    import torch

    from conftest import TRAIN_PATIENTS
    from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
    from gliomaseg.data.preprocessing import Preprocessing, stack_slices
    from gliomaseg.models.registry import create_model
    from gliomaseg.models.weights import bundled_weights, load_initial_weights, load_model

    config = load_config(REPO / "configs" / "t1ce_finetune.yaml")
    assert config.model.init_weights == "lgg" and config.model.in_channels == 3 and config.model.init_member == 1
    check_config(config)
    folded = create_model(config.model)
    load_initial_weights(folded, config)
    ensemble, saved = load_model(bundled_weights("lgg"))
    source = ensemble.members[1]  # the 192-px member, at the ensemble's data.image_size
    assert saved.data.context_slices == 1 and saved.model.in_channels == 9 and saved.data.image_size == 192
    differing = [key for key, value in source.state_dict().items() if value.shape != folded.state_dict()[key].shape]
    assert len(differing) == 1
    for key, value in source.state_dict().items():
        if key not in differing:
            assert torch.equal(folded.state_dict()[key], value), key
    case = load_patient(scan_patient_folder(lgg_root / TRAIN_PATIENTS[0]), 3)
    volume = Preprocessing.from_config(saved.data, volumetric=False).forward(case.images).images
    z = torch.arange(0, volume.shape[-1], 6)
    alone = torch.cat([stack_slices(volume[..., i:i + 1], torch.zeros(1, dtype=torch.long), 1) for i in z.tolist()])
    source.eval()
    folded.eval()
    with torch.no_grad():
        expected = source(alone)
        got = folded(volume[..., z].permute(3, 0, 1, 2).contiguous())
        assert not torch.allclose(expected, source(stack_slices(volume, z, 1)), atol=1e-2)  # neighbours matter
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-4)
