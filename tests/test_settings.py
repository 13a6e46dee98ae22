"""Bounds are enforced on the server, whatever the browser sends; app settings come from flags and env."""

import pytest

from bonsai_ui.core.settings import (GENERATION_BOUNDS, GenerationSettings, SettingsError,
                                parse_app_settings)

REFUSED = [
    ({"max_new_tokens": 0}, "max_new_tokens = 0 is out of range"),
    ({"max_new_tokens": 10**6}, "max_new_tokens"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"top_k": 2.5}, "whole number"),
    ({"repetition_penalty": 0.5}, "repetition_penalty"),
    ({"seed": -2}, "seed"),
    ({"temperature": "hot"}, "must be a number"),
    ({"beam_width": 3}, "unknown generation setting"),
]


@pytest.mark.parametrize("values,message", REFUSED)
def test_out_of_range_settings_are_refused(values, message):
    with pytest.raises(SettingsError, match=message):
        GenerationSettings.checked(**values)


def test_every_bound_edge_is_accepted_and_defaults_fill_in():
    for name, bound in GENERATION_BOUNDS.items():
        for value in (bound.minimum, bound.maximum):
            assert getattr(GenerationSettings.checked(**{name: value}), name) == value
    assert GenerationSettings.checked(top_k=None) == GenerationSettings()
    assert GenerationSettings.checked(max_new_tokens=64.0).max_new_tokens == 64


def test_greedy_and_seed_resolution():
    assert GenerationSettings(temperature=0).greedy
    assert not GenerationSettings(temperature=0.7).greedy
    assert GenerationSettings(seed=5).with_seed().seed == 5
    assert GenerationSettings(seed=-1).with_seed().seed >= 0


def test_flags_override_env_override_defaults():
    assert parse_app_settings([], environ={}).model == "embedded"
    env = {"BONSAI_MODEL": "/m.gguf", "GRADIO_SERVER_PORT": "9000", "BONSAI_BACKEND": "transformers"}
    s = parse_app_settings([], environ=env)
    assert (s.model, s.port, s.backend) == ("/m.gguf", 9000, "transformers")
    s = parse_app_settings(["--port", "9001", "--model", "x"], environ=env)
    assert (s.model, s.port) == ("x", 9001)


def test_bad_env_values_are_refused_with_the_variable_named(capsys):
    with pytest.raises(SystemExit):
        parse_app_settings([], environ={"BONSAI_BACKEND": "tensorrt"})
    assert "BONSAI_BACKEND" in capsys.readouterr().err


@pytest.mark.parametrize("argv, environ, says", [
    (["--format", "chatml"], {}, "invalid choice: 'chatml' (choose from 'auto', 'alpaca', 'think')"),
    ([], {"BONSAI_FORMAT": "chatml"}, "BONSAI_FORMAT='chatml': choose one of auto, alpaca, think"),
])
def test_an_unknown_prompt_format_is_refused_at_start(capsys, argv, environ, says):
    with pytest.raises(SystemExit):
        parse_app_settings(argv, environ=environ)
    assert says in capsys.readouterr().err
