"""The editor's logic, without Gradio: Generate, Regenerate, Continue and Stop on the engine
(``runs``), and the guided demo and examples (``guided``)."""
