"""Training configs: obfuscator arguments, and configs written before they existed."""

import pytest

from veil.errors import VeilError
from veil.training.config import TrainConfig, parse_arguments
from veil.training.state import build_obfuscator


def test_old_configs_with_a_width_load_as_obfuscator_arguments():
    assert TrainConfig.from_dict({"obfuscator": "mobilenet_ae", "obfuscator_width": 0.25}).obfuscator_args == {
        "width": 0.25}
    assert TrainConfig.from_dict({"obfuscator_width": 1.0}).obfuscator_args == {}  # the default needs no argument
    config = TrainConfig(obfuscator_width=0.5)
    assert config.obfuscator_args == {"width": 0.5}
    saved = config.to_dict()
    assert "obfuscator_width" not in saved and TrainConfig.from_dict(saved) == config
    assert TrainConfig.from_dict(saved).differences(TrainConfig(obfuscator_args={"width": 0.25})) == [
        "obfuscator_args {'width': 0.5} -> {'width': 0.25}"]


def test_obfuscator_arguments_parse_as_json_when_they_can():
    assert parse_arguments(["width=0.5", "binary=true", "size=[32, 32]", "name=box"]) == {
        "width": 0.5, "binary": True, "size": [32, 32], "name": "box"}
    with pytest.raises(VeilError, match="KEY=VALUE"):
        parse_arguments(["width"])


def test_an_argument_the_obfuscator_does_not_take_is_one_clear_error():
    assert sum(p.numel() for p in build_obfuscator(TrainConfig(obfuscator_args={"width": 0.5})).parameters()) < sum(
        p.numel() for p in build_obfuscator(TrainConfig()).parameters())
    with pytest.raises(VeilError, match=r"obfuscator 'mobilenet_ae' cannot be built with depth=3: .*depth"):
        build_obfuscator(TrainConfig(obfuscator_args={"depth": 3}))
    with pytest.raises(VeilError, match="unknown obfuscator 'nope'"):
        build_obfuscator(TrainConfig(obfuscator="nope"))
