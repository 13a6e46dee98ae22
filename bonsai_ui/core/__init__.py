"""The foundations every part uses, without Gradio or a model: settings and their bounds, prompt
formats and the one sandboxed Jinja2 environment, the reasoning/response splitter and stop
strings, sizes, and the final answer of a response."""
