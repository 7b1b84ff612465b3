"""Typed YAML configuration: the shipped configs load, bad keys and types are refused."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from conftest import REPO

from gliomaseg.config import Config, DataConfig, ModelConfig, load_config, save_config
from gliomaseg.errors import ConfigError

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _write(tmp_path, raw) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_configs_folder_is_not_empty():
    """configs/ holds at least the two documented recipes."""
    assert {p.name for p in CONFIGS} >= {"lgg_unet16.yaml", "unet_buda.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_with_its_values(path):
    """Each YAML in configs/ loads, and every value it sets is the value in the Config."""
    config = load_config(path)
    assert isinstance(config, Config)
    raw = yaml.safe_load(path.read_text())
    loaded = config.to_dict()
    for section, values in raw.items():
        for key, value in values.items():
            assert loaded[section][key] == value, f"{section}.{key}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_round_trip(path, tmp_path):
    """to_dict/from_dict and save_config/load_config give back an equal Config."""
    config = load_config(path)
    assert Config.from_dict(config.to_dict()) == config
    save_config(config, tmp_path / "copy.yaml")
    assert load_config(tmp_path / "copy.yaml") == config


def test_round_trip_of_non_default_values():
    """A Config with every section changed survives to_dict/from_dict unchanged (tuples included)."""
    config = Config()
    config.model.width = 8
    config.data = DataConfig(image_size=96, crop_to_brain=True, crop_margin=4)
    config.augment.scale = (0.8, 1.25)
    config.train.loss = "dice"
    config.train.lr = 3e-4
    config.inference.postprocess = "largest-3d"
    config.model.out_channels = 3
    config.inference.threshold = (0.2, 0.3, 0.5)
    raw = config.to_dict()
    assert raw["augment"]["scale"] == [0.8, 1.25]  # plain lists for YAML/JSON
    back = Config.from_dict(raw)
    assert back == config and back != Config()
    assert isinstance(back.augment.scale, tuple) and back.inference.threshold == (0.2, 0.3, 0.5)


def test_missing_keys_take_defaults(tmp_path):
    """A partial file keeps the defaults for everything it does not set."""
    config = load_config(_write(tmp_path, {"model": {"width": 8}}))
    assert config.model == dataclasses.replace(ModelConfig(), width=8)
    assert config.train == Config().train


@pytest.mark.parametrize("raw, key", [
    ({"model": {"widht": 16}}, "widht"),
    ({"train": {"lr": 1e-3, "learning_rate": 1e-3}}, "learning_rate"),
    ({"modle": {"width": 16}}, "modle"),
])
def test_unknown_key_raises_naming_it(tmp_path, raw, key):
    """An unknown key or section raises ConfigError whose message names it."""
    with pytest.raises(ConfigError, match=key):
        load_config(_write(tmp_path, raw))


@pytest.mark.parametrize("raw, where", [
    ({"model": {"width": "big"}}, "model.width"),
    ({"model": {"width": 16.5}}, "model.width"),
    ({"data": {"crop_to_brain": "yes"}}, "data.crop_to_brain"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"batch_size": True}}, "train.batch_size"),
    ({"train": {"loss": 3}}, "train.loss"),
    ({"augment": {"scale": 1.1}}, "augment.scale"),
    ({"inference": {"threshold": "low"}}, "inference.threshold: expected a number or a list of numbers"),
    ({"inference": {"threshold": [0.3, "low"]}}, "inference.threshold"),
    ({"model": [1, 2]}, "model"),
])
def test_wrong_type_raises(tmp_path, raw, where):
    """A value of the wrong type raises ConfigError naming the key."""
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(_write(tmp_path, raw))


def test_bad_files_raise_config_error(tmp_path):
    """A missing file, invalid YAML and a non-mapping top level raise ConfigError naming the file."""
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="absent.yaml"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {width: 16\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_config(listing)
