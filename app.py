"""BONSAI Reasoning Editor: ``python app.py [--model … --host … --share yes --auth user:password]``,
or ``python app.py --backend openai --endpoint URL`` to drive a served model (vLLM, SGLang, llama.cpp).

The page is served first and the model loads behind it, so a visitor sees loading progress instead
of a dead link; a model that fails to load ends the process with a plain message and exit code 2.
Everything is composed in ``bonsai_ui/app.py``, which the tests launch too.
"""

from __future__ import annotations

import sys

from bonsai_ui.app import serve
from bonsai_ui.core.settings import parse_app_settings


def main(argv: list[str] | None = None) -> int:
    return serve(parse_app_settings(argv))


if __name__ == "__main__":
    sys.exit(main())
