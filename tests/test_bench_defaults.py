"""bench/bench.py measures what ``python app.py`` runs unless told otherwise: its flags shared with
the app take their defaults and choices from the one options table (core/settings.py), so a new
default or a new choice there (a new --nf4-kernel kernel, say) reaches the benchmark unrestated."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bonsai_ui.core.settings import APP_OPTIONS, AppSettings, parse_app_settings

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bonsai_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports nothing heavy at module level
    return module


def test_bench_defaults_are_the_apps(bench):
    args = bench.build_parser().parse_args(["--config", "unsloth-4bit"])
    app = parse_app_settings([], environ={})  # python app.py, no flags, no BONSAI_* variables
    for name in bench.APP_FLAGS:
        assert getattr(args, name) == APP_OPTIONS[name].default == getattr(app, name), name
        assert getattr(AppSettings(), name) == APP_OPTIONS[name].default, name


def test_bench_accepts_exactly_the_apps_choices(bench):
    actions = {a.dest: a for a in bench.build_parser()._actions}
    for name in bench.APP_FLAGS:
        assert actions[name].choices == APP_OPTIONS[name].choices, name
        assert actions[name].option_strings == [APP_OPTIONS[name].flag]
    for choice in APP_OPTIONS["nf4_kernel"].choices:  # every kernel the app has can be measured
        args = bench.build_parser().parse_args(["--config", "unsloth-4bit", "--nf4-kernel", choice])
        assert args.nf4_kernel == choice
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--config", "unsloth-4bit", "--nf4-kernel", "nonsense"])


def test_the_gpu_suites_measure_the_default_path_without_restating_it():
    """gpu.sh's default-path runs pass no --nf4-kernel / --decoder / --decode-kernels of their
    own: a bench line that names one is a deliberate comparison (bitsandbytes, a new kernel)."""
    text = (BENCH.parent / "gpu.sh").read_text()
    base = next(line for line in text.splitlines() if line.startswith("BENCH="))
    assert "--nf4-kernel" not in base and "--decoder" not in base and "--decode-kernels" not in base
