"""The ablation map, without Gradio: the reasoning cut into sentences or paragraphs, one response
regenerated without each, and how much each changed (``sweep``)."""
