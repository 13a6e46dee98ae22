"""The CUDA path: the Unsloth backend (and transformers + bitsandbytes) on a real GPU.

Skipped where CUDA is absent. On the GPU machine, `bash bench/gpu.sh tests` builds a random-weight model of
a real shape (no model hub there) and runs this file with BONSAI_GPU_MODEL pointing at it.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not os.environ.get("BONSAI_GPU_MODEL"), reason="set BONSAI_GPU_MODEL to a model folder"),
]

from bonsai_ui.engine import Engine, Timing, load_engine  # noqa: E402
from bonsai_ui.engine.static_decoder import StaticDecoder  # noqa: E402
from bonsai_ui.core.prompts import load_format, render_prompt  # noqa: E402
from bonsai_ui.editor.runs import Runner  # noqa: E402
from bonsai_ui.core.settings import AppSettings, GenerationSettings  # noqa: E402

MODEL = os.environ.get("BONSAI_GPU_MODEL", "")
S = GenerationSettings(max_new_tokens=32)
PROMPT = render_prompt(load_format("alpaca"), "reasoning", "How many fruits are there? " * 20, "")


@pytest.fixture(scope="module")
def unsloth_engine():
    engine = load_engine(AppSettings(model=MODEL, backend="auto", context_length=8192))
    engine.backend.ignore_eos = True  # random weights may write EOS at any point
    return engine


@pytest.fixture(scope="module")
def generate_engine(unsloth_engine):
    """The same Unsloth model decoded by transformers' generate (--decoder generate)."""
    b = unsloth_engine.backend
    backend = type(b)(b.model, b.tokenizer, b.model_name, b.context_length, b.eos_token_ids)
    backend.use_decoder("generate")
    backend.ignore_eos = True
    return Engine(backend)


def assert_decoder_note(note):
    """The default GPU path: graphs, the fused step, and the NF4 kernel on every 4-bit layer."""
    import re

    assert note.startswith("static KV cache + CUDA graphs; fused decode kernels; "), note
    counts = re.fullmatch(r".*; NF4 Triton gemv on (\d+) of (\d+) 4-bit layers", note)
    assert counts and counts[1] == counts[2] and int(counts[1]) > 0, note


def stream(engine, prompt=PROMPT, settings=S, cancel=None, stops=(), session=""):
    timing = Timing()
    pieces = list(engine.stream(prompt, settings, cancel or threading.Event(), stops, timing, session))
    return pieces, timing


def test_auto_selects_unsloth_on_cuda(unsloth_engine):
    assert importlib.util.find_spec("unsloth") is not None
    assert unsloth_engine.backend.name == "unsloth"
    assert unsloth_engine.backend.model.device.type == "cuda"
    assert any("4bit" in type(m).__name__ or "Linear4bit" in type(m).__name__
               for m in unsloth_engine.backend.model.modules()), "loaded in 4-bit"
    assert_decoder_note(unsloth_engine.backend.decoder_note)


@pytest.mark.parametrize("which", ["unsloth_engine", "generate_engine"])
def test_streams_incrementally_and_repeats_greedily(which, request):
    unsloth_engine = request.getfixturevalue(which)
    # without prefix reuse: bf16 kernels of other shapes may part greedy runs on random weights
    unsloth_engine.backend.forget_caches()
    a, t = stream(unsloth_engine, session="a")
    b, _ = stream(unsloth_engine, session="b")
    assert t.new_tokens == S.max_new_tokens and len(a) >= S.max_new_tokens // 2
    assert "".join(a) == "".join(b)
    assert t.decode_tps and t.decode_tps > 5


def test_cancel_stops_within_a_token_and_frees_the_engine(unsloth_engine):
    cancel = threading.Event()
    timing = Timing()
    n = 0
    for _ in unsloth_engine.stream(PROMPT, GenerationSettings(max_new_tokens=500), cancel, (), timing):
        n += 1
        if n == 4:
            cancel.set()
            at = timing.new_tokens
    assert timing.ended_by == "stopped" and timing.new_tokens - at <= 2
    assert stream(unsloth_engine, settings=GenerationSettings(max_new_tokens=3))[1].new_tokens == 3


def test_stop_strings_and_worker_errors(unsloth_engine, monkeypatch):
    text = "".join(stream(unsloth_engine)[0])
    stop = text[len(text) // 2: len(text) // 2 + 3]
    if stop.strip():
        cut, timing = stream(unsloth_engine, stops=(stop,))
        assert "".join(cut) == text[: text.index(stop)] and timing.ended_by == "stop string"
    monkeypatch.setattr(unsloth_engine.backend.decoder, "step",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("cuda boom")))
    with pytest.raises(RuntimeError, match="cuda boom"):
        stream(unsloth_engine)
    assert unsloth_engine.idle


def late_edit_after_a_run(engine, session: str) -> list[int]:
    """Run a 60-sentence prompt in ``session``; return the tokens of it edited near its end."""
    base = "Sentence number {}: the pears are counted again. "
    before = render_prompt(load_format("alpaca"), "special", "Q", "", "".join(base.format(i) for i in range(60)))
    after = before.replace("Sentence number 55", "Sentence number 55 (edited)")
    engine.backend.forget_caches()
    stream(engine, prompt=before, settings=GenerationSettings(max_new_tokens=4), session=session)
    return engine.backend.encode(after)


REPEAT = {
    "greedy": GenerationSettings(max_new_tokens=300, temperature=0.0, repetition_penalty=1.1),
    "seeded": GenerationSettings(max_new_tokens=300, temperature=0.8, top_p=0.9, top_k=40,
                                 repetition_penalty=1.1, seed=3),
    "seeded-top-p": GenerationSettings(max_new_tokens=300, temperature=0.8, top_p=0.9, top_k=0,
                                       repetition_penalty=1.0, seed=4),
}


@pytest.mark.parametrize("mode", sorted(REPEAT))
@pytest.mark.parametrize("which", ["unsloth_engine", "generate_engine"])
def test_same_input_same_tokens_with_and_without_reuse(which, mode, request):
    """Same input, same tokens on the GPU: three identical runs and a run that reuses an edited prompt's prefix
    write the same tokens (bench/repeat_check.py does 1,000 tokens on every configuration)."""
    engine = request.getfixturevalue(which)
    backend, settings = engine.backend, REPEAT[mode]
    prompt = render_prompt(load_format("alpaca"), "special", "How many fruits are there?", "",
                           "Henri has 3 apples and Jack has 4 pears. " * 60 + "Jill has 5 books.")
    runs = []
    for i in range(3):
        backend.forget_caches()
        runs.append(stream(engine, prompt, settings, session=f"{which}-{mode}-{i}")[1].token_ids)
    stream(engine, prompt.replace("5 books", "5 pears"), settings, session=f"{which}-{mode}-r")
    _, reuse = stream(engine, prompt, settings, session=f"{which}-{mode}-r")
    assert reuse.reused_tokens and reuse.reused_tokens >= 256
    assert runs[0] == runs[1] == runs[2] == reuse.token_ids and len(runs[0]) == 300


def close(a, b):
    a, b = a.float(), b.float()
    return torch.allclose(a, b, atol=0.15, rtol=0.05), f"max diff {(a - b).abs().max().item()}"


def test_graphed_steps_match_eager_steps_and_the_models_own_forward(unsloth_engine):
    backend = unsloth_engine.backend
    ids = backend.encode(PROMPT)
    graphed = backend.decoder
    eager = StaticDecoder(backend.model, backend.context_length, use_graphs=False)
    cg, ce = graphed.new_cache(), eager.new_cache()
    with torch.inference_mode():
        lg, le = graphed.prefill(cg, ids, 0), eager.prefill(ce, ids, 0)
        assert torch.equal(lg, le)
        x = torch.tensor([ids], device=backend.model.device)
        own = backend.model(input_ids=x).logits[:, -1]
        assert lg.argmax() == own.argmax() and close(lg, own)[0], close(lg, own)[1]
        token = lg.argmax(-1)
        for position in range(len(ids), len(ids) + 3):  # the first graph of a window, then replays
            sg = graphed.step(cg, token, position).clone()
            se = eager.step(ce, token, position)
            assert torch.equal(sg, se), "a replayed graph computes what the eager step does"
            token = sg.argmax(-1)


def test_the_fused_step_matches_the_pytorch_step_and_repeats(unsloth_engine):
    """decode_kernels.py on the GPU: close to the step in PyTorch operations (attention keeps
    float32 probabilities there), the same logits run after run, and a window crossed mid-way."""
    backend = unsloth_engine.backend
    ids = backend.encode(PROMPT)[:250]
    fused = StaticDecoder(backend.model, backend.context_length, use_graphs=False, fused=True)
    plain = StaticDecoder(backend.model, backend.context_length, use_graphs=False, fused=False)
    assert fused.fused, fused.fused_off
    runs = []
    with torch.inference_mode():
        for decoder in (fused, plain, fused):
            cache = decoder.new_cache()
            token = decoder.prefill(cache, ids, 0).argmax(-1)
            logits = []
            for position in range(len(ids), len(ids) + 12):  # crosses the 256-key window
                logits.append(decoder.step(cache, token, position).clone())
                token = torch.tensor([ids[position % len(ids)]], device=token.device)  # same inputs
            runs.append(torch.stack(logits))
    assert torch.equal(runs[0], runs[2]), "identical steps, identical logits"
    assert close(runs[0], runs[1])[0], close(runs[0], runs[1])[1]


def test_static_prefix_reuse_gives_the_logits_of_a_full_re_encode(unsloth_engine):
    backend = unsloth_engine.backend
    ids = late_edit_after_a_run(unsloth_engine, session="s")
    keep = backend._prepare_static("s", ids)
    cache = backend.decoder.cache
    assert keep >= 256 and keep % 256 == 0
    with torch.inference_mode():
        reused = backend.decoder.prefill(cache, ids, keep).clone()
        fresh = backend.decoder.prefill(backend.decoder.new_cache(), ids, 0)
    assert torch.equal(reused, fresh), "reuse gives the bits of a full re-encode"
    long = "Henri has 3 apples and Jack has 4 pears. " * 40  # past one 256-token chunk
    states = list(Runner(unsloth_engine).regenerate("Q", "", long, "alpaca", GenerationSettings(max_new_tokens=4), "r"))
    states = list(Runner(unsloth_engine).regenerate("Q", "", long + "y", "alpaca", GenerationSettings(max_new_tokens=4), "r"))
    assert "reused from cache" in states[-1].stats


def test_lora_adapter_folder_loads(tmp_path_factory):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.bfloat16)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    for name, p in lora.named_parameters():
        if "lora_B" in name:  # zero at init; make the adapter change the output
            p.data.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("adapter")
    lora.save_pretrained(out)
    AutoTokenizer.from_pretrained(MODEL).save_pretrained(out)
    assert (out / "adapter_config.json").is_file()
    engine = load_engine(AppSettings(model=str(out), backend="unsloth"))
    engine.backend.ignore_eos = True
    backend = engine.backend
    assert_decoder_note(backend.decoder_note)
    assert stream(engine, settings=GenerationSettings(max_new_tokens=8))[1].new_tokens == 8
    ids = backend.encode(PROMPT)  # the decoder applies the adapter, as the model's own forward does
    with torch.inference_mode():
        ours = backend.decoder.prefill(backend.decoder.new_cache(), ids, 0)
        own = backend.model(input_ids=torch.tensor([ids], device=ours.device)).logits[:, -1]
        with backend.model.disable_adapter():
            without = backend.model(input_ids=torch.tensor([ids], device=ours.device)).logits[:, -1]
    assert close(ours, own)[0], close(ours, own)[1]
    assert not close(own, without)[0], "the adapter changes the logits"
    with torch.inference_mode():  # the fused step calls the adapted modules too
        steps = []
        for fused in (True, False):
            decoder = StaticDecoder(backend.model, backend.context_length, use_graphs=False,
                                    fused=fused)
            cache = decoder.new_cache()
            token = decoder.prefill(cache, ids, 0).argmax(-1)
            steps.append(decoder.step(cache, token, len(ids)))
        with backend.model.disable_adapter():
            cache = decoder.new_cache()
            bare = decoder.prefill(cache, ids, 0)
            bare = decoder.step(cache, token, len(ids))
    assert close(steps[0], steps[1])[0], close(steps[0], steps[1])[1]
    assert not close(steps[1], bare)[0], "the adapter changes the step's logits"


def test_transformers_backend_with_bitsandbytes_4bit():
    engine = load_engine(AppSettings(model=MODEL, backend="transformers", load_in_4bit="yes"))
    engine.backend.ignore_eos = True
    assert engine.backend.name == "transformers"
    assert_decoder_note(engine.backend.decoder_note)
    pieces, timing = stream(engine, settings=GenerationSettings(max_new_tokens=16))
    assert timing.new_tokens == 16 and pieces
