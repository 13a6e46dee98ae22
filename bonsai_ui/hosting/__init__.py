"""What a launched app exposes and how to close it, without Gradio: upload limit, temporary
files' lifetime, password, the open-app warning (``public``), and upload size checks (``uploads``)."""
