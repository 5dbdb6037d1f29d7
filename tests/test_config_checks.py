"""Every family's config checks its fields when it is built (from Python or from config.json): simple fields have
their declared type (a clear error naming the field), numbers are normalised, the shared data layout is sane."""

import json

import numpy as np
import pytest

import tamer_hf  # noqa: F401  (registers the families)
from tamer_hf.families import all_families

CONFIGS = {family.model_type: family.config_class for family in all_families()}


@pytest.fixture(params=sorted(CONFIGS))
def config_class(request):
    return CONFIGS[request.param]


def a_switch(config_class) -> str:
    return next(name for name, kind in config_class.__annotations__.items() if kind is bool)


@pytest.mark.parametrize("field, value, message", [
    ("num_leads", "12", r"num_leads must be an integer, got '12' \(str\)"),
    ("num_samples", 5000.0, r"num_samples must be an integer, got 5000.0 \(float\)"),
    ("num_leads", True, r"num_leads must be an integer, got True \(bool\)"),
    ("initializer_range", "0.02", r"initializer_range must be a number, got '0.02'"),
])
def test_a_field_of_the_wrong_type_is_named(config_class, field, value, message):
    with pytest.raises(TypeError, match=rf"{config_class.__name__}\.{message}"):
        config_class(**{field: value})


def test_a_switch_must_be_a_bool(config_class):
    switch = a_switch(config_class)
    with pytest.raises(TypeError, match=rf"{switch} must be True or False, got 'no'"):
        config_class(**{switch: "no"})


def test_numbers_are_normalised(config_class):
    config = config_class(num_leads=np.int64(12), initializer_range=1)
    assert type(config.num_leads) is int and config.num_leads == 12
    assert type(config.initializer_range) is float and config.initializer_range == 1.0
    json.dumps(config.to_dict())  # serialisable: no numpy scalar left


@pytest.mark.parametrize("fields, error, message", [
    ({"num_samples": 0}, ValueError, "num_samples must be at least 1, got 0"),
    ({"sampling_rate": -500}, ValueError, "sampling_rate must be positive, got -500"),
    ({"lead_names": ["I"] * 12}, ValueError, "lead_names has repeated leads"),
    ({"lead_names": [1] * 12}, TypeError, "lead_names must be a list of lead names"),
    ({"num_leads": 3, "lead_names": ["I", "II", "V1", "V2"]}, ValueError, "lead_names has 4 names but num_leads is 3"),
])
def test_the_shared_data_layout_is_checked(config_class, fields, error, message):
    with pytest.raises(error, match=message):
        config_class(**fields)


def test_a_config_json_with_a_wrong_type_fails_on_load(config_class, tmp_path):
    config_class().save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    stored[a_switch(config_class)] = "yes"
    (tmp_path / "config.json").write_text(json.dumps(stored))
    with pytest.raises(TypeError, match="must be True or False, got 'yes'"):
        config_class.from_pretrained(tmp_path)
    assert (tmp_path / "configuration_ecg.py").is_file()  # the checks travel with the config file
