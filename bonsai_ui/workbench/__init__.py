"""The workbench, without Gradio: the attempt history (``attempts``), word diffs (``diffing``),
SFT/DPO exports (``export``) and what the workbench's buttons do (``actions``)."""
