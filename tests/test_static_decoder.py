"""The static-cache decoder (the GPU's default loop) checked against transformers on the CPU.

On the GPU the same forward pass is replayed from CUDA graphs (tests/test_gpu.py); here it runs
eagerly in float32, where it must agree with the model's own forward pass and with ``generate``.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from transformers import (AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config,
                          TopKLogitsWarper, TopPLogitsWarper)

from bonsai_ui.engine import LoadError, Timing, load_engine
from bonsai_ui.engine.static_decoder import (PREFILL_CHUNK, StaticDecoder, apply_repetition_penalty,
                                             choose_token, decode, noise_seed, unsupported_reason)
from bonsai_ui.core.prompts import load_format, render_prompt
from bonsai_ui.core.settings import AppSettings, GenerationSettings

SMALL = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
CONFIGS = {
    "llama": LlamaConfig(**SMALL),
    "llama-bias-tied": LlamaConfig(**SMALL, attention_bias=True, tie_word_embeddings=True),
    "llama3-rope": LlamaConfig(**SMALL, rope_parameters={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 256}),
    "qwen2": Qwen2Config(**SMALL, tie_word_embeddings=True),
    "mistral": MistralConfig(**{**SMALL, "num_key_value_heads": 1}, sliding_window=None),
    "mistral-sliding-window": MistralConfig(**SMALL, sliding_window=16),
}


def random_model(config):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    for p in model.parameters():  # larger weights than the init, so that logits differ clearly
        p.data.normal_(0, 0.2 if p.dim() > 1 else 1.0)
    return model


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request):
    return random_model(CONFIGS[request.param])


def generate(model, ids, n, **kwargs):
    inputs = torch.tensor([ids])
    out = model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=n,
                         do_sample=False, eos_token_id=None, pad_token_id=0, **kwargs)
    return out[0, len(ids):].tolist()


def ids_of(n, seed=1, vocab=300):
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@torch.inference_mode()
def test_prefill_logits_match_the_models_own_forward(model):
    ids = ids_of(50)
    decoder = StaticDecoder(model, 512)
    got = decoder.prefill(decoder.new_cache(), ids, 0)
    want = model(torch.tensor([ids])).logits[:, -1]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@torch.inference_mode()
@pytest.mark.parametrize("keep, rest", [(256, 1), (256, 44), (256, 256), (0, 300)])
def test_prefill_after_keeping_a_prefix_matches_a_full_forward(model, keep, rest):
    """A regenerate after an edit: positions past ``keep`` hold stale entries that must not leak."""
    first = ids_of(keep + 40, seed=1)
    edited = first[:keep] + ids_of(rest, seed=2)
    decoder = StaticDecoder(model, 1024)
    cache = decoder.new_cache()
    decoder.prefill(cache, first, 0)
    assert decoder.reusable(cache, edited) == keep
    got = decoder.prefill(cache, edited, keep)
    want = model(torch.tensor([edited])).logits[:, -1]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert cache.tokens == edited and cache.prefilled == len(edited)


@torch.inference_mode()
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("keep, rest", [(256, 1), (256, 200), (512, 57)])
def test_prefill_from_a_kept_prefix_equals_a_whole_prefill_bit_for_bit(model, dtype, keep, rest):
    """Reuse must not change a single bit: the kept entries and the new logits are exactly those of
    a prefill of the whole prompt into a fresh cache."""
    model = copy.deepcopy(model).to(dtype)  # the fixture's float32 weights stay as they are
    decoder = StaticDecoder(model, 1024)
    prompt = ids_of(keep + rest, seed=7)
    whole = decoder.new_cache()
    want = decoder.prefill(whole, prompt, 0)
    edited_before = prompt[:keep] + ids_of(90, seed=8)  # what the session held before
    reused = decoder.new_cache()
    decoder.prefill(reused, edited_before, 0)
    assert decoder.reusable(reused, prompt) == keep
    got = decoder.prefill(reused, prompt, keep)
    assert torch.equal(got, want)
    n = len(prompt)
    for a, b in zip(whole.keys + whole.values, reused.keys + reused.values):
        assert torch.equal(a[:, :, :n], b[:, :, :n])


@pytest.mark.parametrize("cached, ids, prefilled, want", [
    (list(range(600)), list(range(600)), 600, 512),       # the same prompt: last chunk recomputed
    (list(range(600)), list(range(300)) + [9] * 50, 600, 256),  # an edit at 300
    (list(range(600)), list(range(255)) + [9] * 50, 600, 0),    # an edit inside the first chunk
    (list(range(600)), list(range(700)), 300, 256),       # decoded tokens (past 300) are not kept
    ([], list(range(700)), 0, 0),
])
def test_only_whole_prefilled_chunks_are_kept(cached, ids, prefilled, want):
    from bonsai_ui.engine.reuse import reusable

    assert reusable(cached, ids, prefilled, PREFILL_CHUNK) == want


def test_a_prefill_must_start_at_a_chunk_boundary(model):
    decoder = StaticDecoder(model, 512)
    with pytest.raises(ValueError, match="chunk boundary"):
        decoder.prefill(decoder.new_cache(), ids_of(40), 8)


@torch.inference_mode()
@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_decode_equals_generate(model, penalty):
    ids = ids_of(40)
    decoder = StaticDecoder(model, 512)
    got: list[int] = []
    settings = GenerationSettings(max_new_tokens=30, temperature=0.0, repetition_penalty=penalty)
    decode(decoder, decoder.new_cache(), ids, 0, settings, set(), lambda t: got.append(t) or True)
    want = generate(model, ids, 30, repetition_penalty=penalty)
    assert got == want


@torch.inference_mode()
def test_decode_crosses_attention_windows_and_stops_where_asked(model):
    """Windows are 256, 512, ...: a run from 250 to 270 changes window mid-way."""
    ids = ids_of(250)
    decoder = StaticDecoder(model, 512)
    got: list[int] = []
    settings = GenerationSettings(max_new_tokens=20, temperature=0.0, repetition_penalty=1.0)
    cache = decoder.new_cache()
    decode(decoder, cache, ids, 0, settings, set(), lambda t: got.append(t) or True)
    want = generate(model, ids, 20)
    assert got == want
    # the cache holds every token whose entries were written: the prompt and all but the last
    assert cache.tokens == ids + got[:-1]
    stop_at = got[5]
    seen: list[int] = []
    decode(decoder, decoder.new_cache(), ids, 0, settings, {stop_at}, lambda t: seen.append(t) or True)
    assert seen == got[: got.index(stop_at) + 1]
    seen.clear()
    decode(decoder, decoder.new_cache(), ids, 0, settings, set(), lambda t: seen.append(t) or len(seen) < 3)
    assert seen == got[:3]


@pytest.mark.parametrize("config, reason", [
    (LlamaConfig(**SMALL), None),
    (Qwen2Config(**SMALL), None),
    (Qwen2Config(**SMALL, use_sliding_window=True, sliding_window=64), "sliding-window attention"),
    (LlamaConfig(**SMALL, hidden_act="gelu"), "activation 'gelu'"),
    (LlamaConfig(**SMALL, rope_parameters={"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}),
     "RoPE type 'dynamic'"),
    (GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100), "model type 'gpt2'"),
])
def test_unsupported_models_are_named(config, reason):
    class Stub:
        pass
    stub = Stub()
    stub.config = config
    got = unsupported_reason(stub)
    assert (got is None) if reason is None else (got is not None and got.startswith(reason))


LOGITS = torch.tensor([[2.0, -1.0, 0.5, 3.0, -2.5, 1.0]])


@pytest.mark.parametrize("penalty, seen, want", [
    (1.0, [0, 1], [2.0, -1.0, 0.5, 3.0, -2.5, 1.0]),
    (2.0, [0, 1], [1.0, -2.0, 0.5, 3.0, -2.5, 1.0]),  # positive divided, negative multiplied
    (2.0, [], [2.0, -1.0, 0.5, 3.0, -2.5, 1.0]),
])
def test_repetition_penalty_follows_transformers(penalty, seen, want):
    mask = torch.zeros(6, dtype=torch.bool)
    mask[seen] = True
    torch.testing.assert_close(apply_repetition_penalty(LOGITS, mask, penalty), torch.tensor([want]))


@pytest.mark.parametrize("top_k, top_p", [(0, 1.0), (2, 1.0), (0, 0.5), (3, 0.9), (1, 0.3)])
def test_sampling_keeps_the_tokens_transformers_keeps(top_k, top_p):
    """Tokens outside transformers' top-k/top-p set are never drawn; those inside can be."""
    settings = GenerationSettings(temperature=2.0, top_k=top_k, top_p=top_p, repetition_penalty=1.0)
    scores = LOGITS / 2.0
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    allowed = set(torch.nonzero(scores[0] > float("-inf")).view(-1).tolist())
    generator = torch.Generator()
    drawn = {int(choose_token(LOGITS, torch.zeros(6, dtype=torch.bool), settings, generator, position))
             for position in range(400)}
    assert drawn == allowed


def test_sampling_noise_depends_on_seed_and_position_only():
    """The same (seed, position) draws the same token whatever ran before; others vary."""
    settings = GenerationSettings(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=5)
    seen = torch.zeros(6, dtype=torch.bool)
    generator = torch.Generator()
    first = [int(choose_token(LOGITS, seen, settings, generator, p)) for p in range(50)]
    for p in range(50, 80):  # the generator is used elsewhere in between
        choose_token(LOGITS, seen, settings, generator, p)
    again = [int(choose_token(LOGITS, seen, settings, torch.Generator(), p)) for p in range(50)]
    assert first == again and len(set(first)) > 1
    other = GenerationSettings(**{**settings.__dict__, "seed": 6})
    assert [int(choose_token(LOGITS, seen, other, generator, p)) for p in range(50)] != first
    assert len({noise_seed(s, p) for s in range(20) for p in range(20)}) == 400


@pytest.mark.parametrize("n", [5, 1024, 1025, 49152, 152064])
def test_ordered_cumsum_is_a_cumsum(n):
    from bonsai_ui.engine.static_decoder import ordered_cumsum

    x = torch.rand(1, n, dtype=torch.float64)
    torch.testing.assert_close(ordered_cumsum(x), x.cumsum(-1))


def test_sampling_follows_the_probabilities():
    """argmax(p / exponential noise) draws token i with probability p_i."""
    settings = GenerationSettings(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=3)
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    want = logits.softmax(-1)[0]
    generator = torch.Generator()
    draws = torch.tensor([int(choose_token(logits, torch.zeros(3, dtype=torch.bool), settings,
                                            generator, p)) for p in range(6000)])
    got = torch.bincount(draws, minlength=3) / 6000
    torch.testing.assert_close(got, want, atol=0.025, rtol=0)


def test_greedy_choice_is_the_argmax_after_the_penalty():
    seen = torch.tensor([False, False, False, True, False, False])
    greedy = GenerationSettings(temperature=0.0, repetition_penalty=2.0)
    assert int(choose_token(LOGITS, seen, greedy, None)) == 0  # 3.0 / 2 < 2.0


# -- through the backend, on the embedded model ---------------------------------------------------

GREEDY = GenerationSettings(max_new_tokens=40, temperature=0.0)
PROMPT = render_prompt(load_format("alpaca"), "reasoning",
                       "Henri has 3 apples and Jack has 4 pears. How many fruits are there?", "")


def text(engine, prompt=PROMPT, settings=GREEDY, session="s"):
    return "".join(engine.stream(prompt, settings, threading.Event(), (), Timing(), session))


def test_static_decoder_writes_what_generate_writes_on_the_embedded_model(hf_engine, static_engine):
    assert static_engine.backend.decoder_note == "static KV cache"  # no CUDA graphs on the CPU
    for settings in (GREEDY, GenerationSettings(max_new_tokens=40, repetition_penalty=1.3)):
        assert text(static_engine, settings=settings) == text(hf_engine, settings=settings)


def test_sessions_take_turns_in_the_one_cache_and_keep_their_prefixes(static_engine, monkeypatch):
    from bonsai_ui.engine import transformers_backend

    monkeypatch.setattr(transformers_backend, "PREFIX_CACHE_SESSIONS", 2)
    backend = static_engine.backend
    backend.forget_caches()
    short = GenerationSettings(max_new_tokens=2)
    long = render_prompt(load_format("alpaca"), "reasoning",
                         "Henri has 3 apples and Jack has 4 pears. " * 40 + "How many fruits?", "")
    other = long.replace("Henri", "Jill")
    full = (backend.count_tokens(long) - 1) // PREFILL_CHUNK * PREFILL_CHUNK
    assert full >= PREFILL_CHUNK
    text(static_engine, long, settings=short, session="alice")
    text(static_engine, other, settings=short, session="bob")
    assert backend.last_reused_tokens == 0, "bob does not get alice's entries"
    text(static_engine, long, settings=short, session="alice")  # alice's entries come back
    assert backend.last_reused_tokens == full
    for name in ("carol", "dave", "erin"):  # only the two most recent sessions stay saved
        text(static_engine, long, settings=short, session=name)
    assert len(backend._saved) == 2
    text(static_engine, long, settings=short, session="alice")
    assert backend.last_reused_tokens == 0
    text(static_engine, long, settings=short, session="dave")
    assert backend.last_reused_tokens == full


def test_decoder_flag_on_an_unsupported_model_is_a_plain_load_error(tmp_path, hf_engine):
    folder = tmp_path / "gpt2"
    AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)) \
        .save_pretrained(folder)
    hf_engine.backend.tokenizer.save_pretrained(folder)
    with pytest.raises(LoadError, match=r"--decoder static: model type 'gpt2'"):
        load_engine(AppSettings(model=str(folder), backend="transformers", decoder="static"))
    auto = load_engine(AppSettings(model=str(folder), backend="transformers", decoder="auto"))
    assert auto.backend.decoder is None and auto.backend.decoder_note == "generate"
    # its tokenizer's end of text (50256) lies outside its 100-token vocabulary: the model serves,
    # and the questions' format is named as not enforced rather than stopping the start
    from bonsai_ui.core.constraints import FBQ

    assert "llguidance cannot read this model's tokenizer" in auto.check_format(FBQ)


def test_zerogpu_keeps_generate(monkeypatch, hf_engine):
    """ZeroGPU runs each request in a forked worker: graphs from start-up would not be there."""
    from types import SimpleNamespace

    from bonsai_ui.engine import transformers_backend

    monkeypatch.setattr(transformers_backend, "on_zerogpu", lambda: True)
    b = hf_engine.backend
    on_cuda = SimpleNamespace(device=torch.device("cuda"), config=b.model.config)
    backend = type(b)(on_cuda, b.tokenizer, b.model_name, b.context_length, b.eos_token_ids)
    backend.use_decoder("auto")
    assert backend.decoder is None and backend.decoder_note == "generate (ZeroGPU)"


@torch.inference_mode()
@pytest.mark.parametrize("keep, rest", [(256, 1), (256, 255), (256, 256), (0, 300)])
def test_decoding_on_from_a_kept_prefix_writes_what_generate_writes(model, keep, rest):
    """Chunks are padded; the padding must not leak into the logits or the tokens that follow."""
    first = ids_of(keep + 30, seed=3)
    edited = first[:keep] + ids_of(rest, seed=4)
    decoder = StaticDecoder(model, 1024)
    cache = decoder.new_cache()
    decoder.prefill(cache, first, 0)
    tokens: list[int] = []
    settings = GenerationSettings(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
    decode(decoder, cache, edited, keep, settings, set(), lambda t: tokens.append(t) or True)
    assert tokens == generate(model, edited, 8)


@torch.inference_mode()
def test_a_prefill_that_fails_half_way_claims_nothing_it_overwrote(model, monkeypatch):
    first = ids_of(60, seed=5)
    decoder = StaticDecoder(model, 512)
    cache = decoder.new_cache()
    decoder.prefill(cache, first, 0)
    def boom(*_):
        raise RuntimeError("oom")

    monkeypatch.setattr(decoder.layers[-1].mlp.down_proj, "forward", boom)
    with pytest.raises(RuntimeError, match="oom"):
        decoder.prefill(cache, first[:20] + ids_of(40, seed=6), 0)  # layers before the last wrote
    assert cache.tokens == [] and cache.prefilled == 0


def test_a_save_that_runs_out_of_memory_drops_reuse_and_keeps_serving(static_engine, monkeypatch):
    backend = static_engine.backend
    backend.forget_caches()
    short = GenerationSettings(max_new_tokens=2)
    text(static_engine, settings=short, session="alice")

    def out_of_memory(cache):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(backend.decoder, "save", out_of_memory)
    assert text(static_engine, settings=short, session="bob")  # bob runs; alice's entries are gone
    assert backend._owner == "bob" and not backend._saved


def test_a_run_that_never_ended_keeps_the_next_one_out_of_the_cache(static_engine):
    """The engine lets go after a stall timeout; the decoder's own lock still guards its cache."""
    backend = static_engine.backend
    assert backend._decoding.acquire(blocking=False)  # as if a stuck run held it
    try:
        with pytest.raises(RuntimeError, match="still running on the GPU"):
            text(static_engine, settings=GenerationSettings(max_new_tokens=2), session="next")
    finally:
        backend._decoding.release()
    assert static_engine.idle
