"""The page's events as Gradio's config hands them to the browser (no server, no browser): what the
page copies on every click depends on which components are an event's progress targets and inputs
(docs/benchmarks.md, workbench click latency)."""

from __future__ import annotations

import pytest

from conftest import app_settings


@pytest.fixture(scope="module")
def config():
    from bonsai_ui.app import compose

    demo = compose(app_settings([])).demo  # the page python app.py serves
    return demo.config, {c["id"]: c for c in demo.config["components"]}


def test_events_with_hidden_progress_report_it_on_one_hidden_component(config):
    cfg, components = config
    hidden = [d for d in cfg["dependencies"] if d["show_progress"] == "hidden"]
    sinks = {tuple(d["show_progress_on"] or ()) for d in hidden}
    assert len(hidden) > 50 and len(sinks) == 1
    (sink,) = sinks.pop()
    assert components[sink]["type"] == "textbox" and components[sink]["props"]["visible"] is False
    # the model runs keep their progress on their outputs, as before
    shown = [d for d in cfg["dependencies"] if d["show_progress"] != "hidden" and d["outputs"]]
    assert shown and all(d["show_progress_on"] is None for d in shown)


@pytest.mark.parametrize("elem_id", ["compare-a", "compare-b"])
def test_no_server_event_reads_a_compare_list(config, elem_id):
    """A browser-only step reads the lists into pick_wire; a server event reading them would make
    the page copy their 200 choices on every later status change of every event."""
    cfg, components = config
    (list_id,) = [i for i, c in components.items() if c["props"].get("elem_id") == elem_id]
    readers = [d for d in cfg["dependencies"] if list_id in d["inputs"]]
    assert readers and all(not d["backend_fn"] for d in readers)


def _deps(cfg, name: str) -> list[dict]:
    return [d for d in cfg["dependencies"] if d["backend_fn"] and d.get("api_name") == name]


def test_a_table_click_sends_one_wire_and_states(config):
    """★, ✗, a note's selection and ↩ answer through one wire (relay.py): an output the handler
    left out would be rebuilt by Gradio on every click (~0.8 ms each; 18 of them on a ★)."""
    cfg, components = config
    (click,) = _deps(cfg, "on_table_select")
    kinds = [components[i]["type"] for i in click["outputs"]]
    assert kinds.count("state") == len(kinds) - 1
    (wire,) = [i for i in click["outputs"] if components[i]["type"] != "state"]
    assert components[wire]["type"] == "textbox" and components[wire]["props"]["visible"] is False
    # the browser step after it hands the wire out to the editor, the table, the note, ...
    steps = [d for d in cfg["dependencies"] if not d["backend_fn"] and d["inputs"] == [wire]]
    assert len(steps) == 1 and len(steps[0]["outputs"]) > 15 and steps[0]["outputs"][-1] == wire


@pytest.mark.parametrize("elem_id", ["compare-a", "compare-b"])
def test_a_pick_is_one_browser_step_and_one_server_event(config, elem_id):
    """Each list's step writes both lists' ids on one wire (a change that comes while the server
    event runs is run once it ends, reading the wire then: it must hold the whole pair); the
    wire's change is the one server event, which reads no list."""
    cfg, components = config
    lists = [i for i, c in components.items() if c["props"].get("elem_id") in ("compare-a", "compare-b")]
    (list_id,) = [i for i in lists if components[i]["props"]["elem_id"] == elem_id]
    (step,) = [d for d in cfg["dependencies"] if (list_id, "input") in map(tuple, d["targets"])]
    assert not step["backend_fn"] and sorted(step["inputs"]) == sorted(lists)
    assert [tuple(t) for t in step["targets"]] == [(list_id, "input")]  # one list's copy for its targets
    (wire,) = step["outputs"]
    (show,) = [d for d in cfg["dependencies"] if (wire, "change") in map(tuple, d["targets"])]
    assert show["backend_fn"] and show["api_name"] == "show_compare" and not set(show["inputs"]) & set(lists)
    assert show["trigger_mode"] == "always_last"
    assert all(components[i]["type"] in ("state", "textbox") for i in show["outputs"])
