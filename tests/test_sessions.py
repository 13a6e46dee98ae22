"""Per-session state on the server stays bounded: Gradio keeps each session's page state, at most
--session-capacity sessions of it (the soak in docs/benchmarks.md measured ~0.3 MB a session and
memory growing with every session under Gradio's own default of 10,000)."""

from __future__ import annotations

from gradio_client import Client

from bonsai_ui.engine import Engine
from bonsai_ui.runs import Runner
from bonsai_ui.settings import AppSettings, parse_app_settings
from conftest import LaunchedApp, ScriptedBackend


def test_the_server_keeps_the_state_of_at_most_session_capacity_sessions():
    settings = AppSettings(session_capacity=10)
    runner = Runner(Engine(ScriptedBackend(pieces=["a", " b"])))
    app = LaunchedApp(runner, settings=settings)
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
