"""Per-session state on the server stays bounded: Gradio keeps each session's page state, at most
--session-capacity sessions of it (the soak in docs/benchmarks.md measured ~0.3 MB a session and
memory growing with every session under Gradio's own default of 10,000)."""

from __future__ import annotations

import json
from pathlib import Path

from gradio_client import Client

from bonsai_ui.engine import Engine
from bonsai_ui.core.settings import parse_app_settings
from conftest import LaunchedApp, ScriptedBackend, app_settings


def test_the_server_keeps_the_state_of_at_most_session_capacity_sessions():
    app = LaunchedApp(Engine(ScriptedBackend(pieces=["a", " b"])), ["--session-capacity", "10"])
    try:
        client = Client(app.url, verbose=False)
        for i in range(25):
            client.reset_session()  # a new visitor
            result = client.predict(f"Question {i}?", "", "vanilla", "alpaca", "", 2, 0.0, 0.95,
                                    50, 1.1, 0, api_name="/generate")
            assert result[1] == "a b"
        assert len(app.demo.state_holder.session_data) == 10
        assert client.session_hash in app.demo.state_holder  # the newest is kept
    finally:
        app.close()


def test_session_capacity_is_a_bounded_setting(capsys):
    assert parse_app_settings([], environ={}).session_capacity == 1000
    assert parse_app_settings([], environ={"BONSAI_SESSION_CAPACITY": "50"}).session_capacity == 50
    try:
        parse_app_settings(["--session-capacity", "5"], environ={})
    except SystemExit:
        pass
    assert "--session-capacity 5 is out of range: allowed 10 to 100000" in capsys.readouterr().err


# -- a new session's copy of the page's config, made lazily (ui/gradio_sessions.py) ----------------

def _page():
    from bonsai_ui.app import compose

    return compose(app_settings([])).demo  # the page python app.py serves


def _eager(demo):
    """A session as Gradio 6.31 makes it itself: every block's config copied at the start."""
    from gradio.state_holder import SessionState

    from bonsai_ui.ui import gradio_sessions

    state = SessionState.__new__(SessionState)
    gradio_sessions.EAGER["init"](state, demo)
    return state, lambda: list(gradio_sessions.EAGER["components"].fget(state))


def test_a_new_session_copies_no_block_config_until_it_is_used():
    from gradio.state_holder import SessionState

    demo = _page()
    assert SessionState._bonsai_lazy, "the page installs the lazy copy (gradio 6.31.0 pinned)"
    state = SessionState(demo)
    assert state.config_values == {} and len(state._config_ids) > 150  # ~210 blocks on the page


def test_a_deep_link_sees_the_same_configs_as_with_gradios_eager_copy():
    """Same updates on both: Gradio's eager session and the lazy one list identical configs, in
    the same order (what /gradio_api/deep_link writes)."""
    from gradio.state_holder import SessionState

    demo = _page()
    lazy = SessionState(demo)
    eager, eager_components = _eager(demo)
    textbox = next(b for b in demo.blocks.values() if type(b).__name__ == "Textbox")
    markdown = next(b for b in demo.blocks.values() if type(b).__name__ == "Markdown")
    for state in (lazy, eager):
        state._update_value_in_config(textbox._id, "typed by the visitor")
        state[markdown._id] = type(markdown)(value="**changed**")  # an update that replaces a block
        state._update_config(markdown._id)
    got, want = list(lazy.components), eager_components()
    assert len(got) == len(want) > 150
    assert got == want
    assert any(c.get("props", {}).get("value") == "typed by the visitor" for c in got)


def test_a_deep_link_through_the_server_carries_what_a_run_wrote():
    import httpx

    app = LaunchedApp(Engine(ScriptedBackend(pieces=["Twelve", " legs."])))
    try:
        client = Client(app.url, verbose=False)
        result = client.predict("How many legs?", "", "vanilla", "alpaca", "", 4, 0.0, 0.95, 50, 1.1,
                                0, api_name="/generate")
        assert result[1] == "Twelve legs."
        state = app.demo.state_holder[client.session_hash]
        assert 0 < len(state.config_values) < len(state._config_ids)  # only what the run touched
        link = httpx.get(app.url + "gradio_api/deep_link",
                         params={"session_hash": client.session_hash}).json()
        assert link
        stored = Path(app.demo.server_app.uploaded_file_dir) / "deep_links" / link / "state.json"
        components = json.loads(stored.read_text())
        assert len(components) == len(state._config_ids)
        assert any(c.get("props", {}).get("value") == "Twelve legs." for c in components)
    finally:
        app.close()


def test_another_gradio_keeps_its_own_sessions_and_says_so(monkeypatch, capsys):
    from gradio.state_holder import SessionState

    from bonsai_ui.ui import gradio_sessions

    monkeypatch.setattr(SessionState, "_bonsai_lazy", False)
    monkeypatch.setattr(gradio_sessions, "GRADIO_SOURCE_SHA256", "0" * 64)
    before = SessionState.__init__
    assert gradio_sessions.lazy_deep_link_configs() is False
    assert SessionState.__init__ is before
    assert "new sessions keep Gradio's eager config copy" in capsys.readouterr().err
