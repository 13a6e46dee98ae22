"""The BONSAI debate, without Gradio: rounds, questions, depth and stale marks (``rounds``), its
steps on the editor's Runner (``steps``) and its files (``transcript``)."""
