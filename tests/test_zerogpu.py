"""ZeroGPU wrapping: durations that fit max new tokens, and no change off ZeroGPU."""

import sys
import types

import pytest

from bonsai_ui.engine import zerogpu


@pytest.mark.parametrize("tokens,seconds", [(1, 15), (512, 83), (4096, 300), (0, 15)])
def test_duration_fits_max_new_tokens(tokens, seconds):
    assert zerogpu.duration_for(tokens) == seconds


def handler(question, input, max_new_tokens, temperature=0.0):
    yield f"{question}:{max_new_tokens}"


def test_unchanged_off_zerogpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.gpu(handler) is handler


def test_wrapped_with_a_duration_on_zerogpu(monkeypatch):
    seen = {}
    fake = types.ModuleType("spaces")

    def GPU(duration):
        def wrap(fn):
            def wrapped(*args, **kwargs):
                seen["duration"] = duration(*args, **kwargs)
                return fn(*args, **kwargs)
            return wrapped
        return wrap

    fake.GPU = GPU
    fake.__spec__ = types.SimpleNamespace(name="spaces")
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(zerogpu.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped = zerogpu.gpu(handler)
    assert list(wrapped("Q", "", 1024)) == ["Q:1024"]
    assert seen["duration"] == zerogpu.duration_for(1024)
    list(wrapped("Q", "", max_new_tokens=64))
    assert seen["duration"] == zerogpu.duration_for(64)
