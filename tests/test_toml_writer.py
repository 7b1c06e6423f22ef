"""alem's one TOML writer: what it writes, tomllib reads back exactly (alem.toml and NEB presets)."""

from __future__ import annotations

import math
import tomllib

import pytest

from alem import toml_writer
from alem.config import CampaignConfig

AWKWARD = 'say "hi" \\ C:\\path\nnext line\ttab \x7f\x01 Å 😀'


def test_nested_tables_and_awkward_strings_round_trip():
    data = {
        "name": AWKWARD,
        "numbers": [1, 2.5, -3],
        "flags": [True, False],
        "neb": {"n_images": 5, "fmax_ev_a": 0.05, "label": "a]b[c", "mlip": {"force field": "CHGNet", "big": float("inf")}},
    }
    assert tomllib.loads(toml_writer.dumps(data)) == data
    assert math.isnan(tomllib.loads(toml_writer.dumps({"x": float("nan")}))["x"])


def test_a_value_toml_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="cannot write NoneType"):
        toml_writer.toml_value(None)


def test_alem_toml_keeps_a_campaign_name_with_quotes_and_newlines(tmp_path):
    config = CampaignConfig()
    config.campaign.name = AWKWARD
    config.save(tmp_path)
    assert CampaignConfig.load(tmp_path).campaign.name == AWKWARD


def test_the_demo_preset_is_the_shipped_one_with_the_demo_overrides(tmp_path):
    from alem.demo import DEMO_PRESET, DEMO_PRESET_OVERRIDES, write_demo_preset
    from alem.neb.presets import find_preset_file, load_preset

    written = tomllib.loads(write_demo_preset(tmp_path).read_text())
    shipped = tomllib.loads(find_preset_file("mlip_chgnet").read_text())
    assert written["name"] == DEMO_PRESET and written["description"] == DEMO_PRESET_OVERRIDES["description"]
    assert written["neb"] == {**shipped["neb"], **DEMO_PRESET_OVERRIDES["neb"]}
    assert written["mlip"] == shipped["mlip"]
    assert load_preset(DEMO_PRESET, tmp_path).neb.max_steps == 200
