"""Component updates sent to the page as one JSON text and handed out there by a browser-only step.

Why not as a server event's outputs: Gradio treats every output a handler leaves out (or skips)
as an update and builds that component anew on the server (``Blocks.postprocess_data``: the
constructor, its config, ``inspect.signature``; ~0.8 ms each), and runs each value it does send
through a worker thread. The attempts table's click reopens an attempt into the editor, so its
event had 23 outputs, and a ★, which changes two of them, rebuilt the other 18: 14.5 ms of the
server's ~45 ms of CPU a click at 200 long attempts (a 2-vCPU VM).
Through a relay the event's outputs are the wire and its States (which Gradio keeps without
building anything), and the page copies one string per status change rather than every prop of
every output (see ``Workbench``).

A relay's targets are fixed when the page is built; a handler's updates for any of them go out
as ``{index: value}`` on the wire, each value as Gradio's own postprocess would have sent it; the
browser step gives each target its value (``undefined``, for a target the handler left alone,
changes nothing) and empties the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr
import orjson
from gradio.data_classes import GradioModel, GradioRootModel

from .common import PRIVATE


def page_value(component: gr.components.Component, value):
    """``value`` as Gradio would send it to the page for ``component``: a plain value through the
    component's postprocess; an update (``gr.update(...)``) with its value so too (a list's value
    checked against the choices sent with it); an ``orjson.Fragment`` (JSON already written, such
    as the stored history) as it is."""
    if isinstance(value, orjson.Fragment):
        return value
    if isinstance(value, dict) and value.get("__type__") == "update":
        out = dict(value)
        if "choices" in out:  # as Gradio's Dropdown and Radio take them: a bare choice is its own label
            out["choices"] = [tuple(c) if isinstance(c, (tuple, list)) else (str(c), c) for c in out["choices"]]
            # the list's postprocess would check the value against its old choices: these instead
            if out.get("value") is not None and out["value"] not in {v for _, v in out["choices"]}:
                raise ValueError(f"{out['value']!r} is not one of the choices sent")
        elif "value" in out:
            out["value"] = page_value(component, out["value"])
        return out
    if isinstance(value, gr.blocks.Block):
        raise TypeError(f"send gr.update(...) for {component.elem_id or type(component).__name__}, "
                        "not a component: a relay does not build components")
    out = component.postprocess(value)
    return out.model_dump() if isinstance(out, (GradioModel, GradioRootModel)) else out


@dataclass
class Relay:
    wire: gr.Textbox  # hidden; JSON text of {index in targets: value}
    targets: list  # the components the browser step writes
    js: str = field(init=False)

    def __post_init__(self):
        if any(c.stateful for c in self.targets):
            raise ValueError("a State is kept on the server: make it an output of the event itself")
        n = len(self.targets)
        # One output per target, then the wire (emptied); nothing at all while the wire is empty.
        self.js = (f"(text) => {{ const out = new Array({n + 1}).fill(undefined); if (!text) return out; "
                   f"const d = JSON.parse(text); for (const k in d) out[Number(k)] = d[k]; "
                   f"out[{n}] = null; return out; }}")

    def routed(self, updates: dict) -> dict:
        """``updates`` with those for the targets moved into one JSON text on the wire."""
        parts = {str(i): page_value(c, updates.pop(c)) for i, c in enumerate(self.targets) if c in updates}
        if parts:
            updates[self.wire] = orjson.dumps(parts).decode("utf-8")
        return updates

    def after(self, event):
        """The browser step after ``event`` (which may have written the wire); returns it."""
        return event.then(None, self.wire, [*self.targets, self.wire], js=self.js, **PRIVATE)
