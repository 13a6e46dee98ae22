"""relay.py: updates sent as one JSON text, each value as Gradio's own postprocess sends it."""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import orjson
import pytest

from bonsai_ui.ui.relay import Relay, page_value


MAKERS = dict(text=gr.Textbox, table=lambda: gr.Dataframe(headers=["a", "b"]), markdown=gr.Markdown,
              slider=lambda: gr.Slider(0, 10), number=gr.Number, radio=lambda: gr.Radio(["x", "y"]),
              pick=lambda: gr.Dropdown([]), store=lambda: gr.BrowserState(None), html=gr.HTML)


def _components():
    with gr.Blocks():
        return {name: make() for name, make in MAKERS.items()} | dict(state=gr.State(None),
                                                                     wire=gr.Textbox(visible=False))


C = _components()


def gradio_sends(name: str, value):
    """What Gradio itself sends the page for ``value`` as the one output of an event."""
    with gr.Blocks() as demo:
        out = MAKERS[name]()
        gr.Button().click(lambda: None, None, out)
    fn = next(iter(demo.fns.values()))
    # in a thread of its own: Playwright's sync API may run an event loop in this one
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(asyncio.run, demo.postprocess_data(fn, copy.deepcopy(value), None)).result()[0]
    return orjson.loads(orjson.dumps(sent))


# (component, value as handed to the relay); the page must get what Gradio would send
VALUES = [
    ("text", "a note"),
    ("text", None),
    ("markdown", "**bold**\n\n    indented"),
    ("slider", 3),
    ("number", 1.5),
    ("radio", "y"),
    ("html", "<ins>x</ins> &amp;"),
    ("store", {"k": [1, 2]}),
    ("table", [[1, "x"], [2, "y"]]),
    ("text", gr.update(value="n", label="Note on #3")),
    ("text", gr.update(label="only a label")),
    ("pick", gr.update(choices=[("#1 · a", "id1"), ("#2 · b", "id2")], value="id2")),
    ("pick", gr.update(choices=["x", "y"], value="y")),  # bare choices: each its own label
    ("pick", gr.update(choices=[], value=None)),
    ("pick", gr.update(choices=["x", "y"])),  # new choices, the value left alone
]


@pytest.mark.parametrize("name,value", VALUES)
def test_values_go_out_as_gradio_sends_them(name, value):
    assert orjson.loads(orjson.dumps(page_value(C[name], value))) == gradio_sends(name, value)


def test_json_already_written_goes_out_as_it_is():
    written = orjson.dumps({"version": 1, "attempts": []})
    assert orjson.dumps({"0": page_value(C["store"], orjson.Fragment(written))}) == b'{"0":' + written + b"}"


@pytest.mark.parametrize("value,error", [
    (gr.update(choices=[("#1", "id1")], value="id9"), ValueError),  # not among the choices sent
    (gr.Textbox(value="x", render=False), TypeError),  # a component would be built: say gr.update
])
def test_refused(value, error):
    with pytest.raises(error):
        page_value(C["pick"] if isinstance(value, dict) else C["text"], value)


def test_a_state_cannot_be_a_target():
    with pytest.raises(ValueError, match="State"):
        Relay(C["wire"], [C["text"], C["state"]])


def test_routed_moves_the_targets_onto_the_wire_and_leaves_the_rest():
    relay = Relay(C["wire"], [C["text"], C["table"], C["pick"]])
    updates = relay.routed({C["table"]: [[2, "y"]], C["state"]: ["kept"], C["markdown"]: "not a target"})
    assert updates[C["state"]] == ["kept"] and updates[C["markdown"]] == "not a target"
    assert orjson.loads(updates[C["wire"]]) == {"1": C["table"].postprocess([[2, "y"]]).model_dump()}
    assert relay.routed({C["state"]: 1}) == {C["state"]: 1}  # nothing for the page: the wire untouched


def test_the_browser_step_hands_each_target_its_value(browser):
    """The step's JavaScript in Chromium: a target the handler left alone gets ``undefined``
    (Gradio's page then leaves it as it is), the wire is emptied, an empty wire changes nothing."""
    relay = Relay(C["wire"], [C["text"], C["table"], C["pick"]])
    text = relay.routed({C["pick"]: gr.update(choices=[("#1", "a")], value="a"), C["text"]: "t"})[C["wire"]]
    page = browser.new_page()
    try:
        run = f"(text) => ({relay.js})(text).map((v) => v === undefined ? '<undefined>' : v)"
        given, empty = page.evaluate(run, text), page.evaluate(run, None)
    finally:
        page.close()
    assert given == ["t", "<undefined>", {"__type__": "update", "choices": [["#1", "a"]], "value": "a"}, None]
    assert empty == ["<undefined>"] * 4
