"""The static decoder's fused one-token step (decode_kernels.py), on the CPU in Triton's interpreter.

The fused step must give the logits of the PyTorch step (float32: to float32 rounding; bf16: to
bf16's), the same greedy tokens in float32, bit-identical rotary embedding and residual adds, and
the same logits run after run; for every model family the decoder supports, Mistral's sliding
window included, across attention windows.
"""

from __future__ import annotations

import pytest
import torch

from bonsai_ui.engine.static_decoder import StaticDecoder, _rms_norm, _rotate_half, decode
from bonsai_ui.core.settings import GenerationSettings
from test_static_decoder import CONFIGS, ids_of, random_model


@pytest.fixture(autouse=True, scope="module")
def interpreter():
    import triton

    assert triton.knobs.runtime.interpret, "TRITON_INTERPRET=1 must be set before triton is imported"
    yield


# every family in float32; bf16 and greedy runs on two (the interpreter runs ~1 s a step here)
CASES = [(name, torch.float32) for name in sorted(CONFIGS)] + \
    [("qwen2", torch.bfloat16), ("mistral-sliding-window", torch.bfloat16)]
ATOL = {torch.float32: 2e-4, torch.bfloat16: 0.15}


def steps(decoder, ids, tokens):
    """Logits after each of ``tokens`` fed one at a time after a prefill of ``ids``."""
    cache = decoder.new_cache()
    decoder.prefill(cache, ids, 0)
    out = []
    for i, token in enumerate(tokens):
        out.append(decoder.step(cache, torch.tensor([token]), len(ids) + i).clone())
    return torch.stack(out)


@torch.inference_mode()
@pytest.mark.parametrize("name,dtype", CASES)
def test_the_fused_step_gives_the_logits_of_the_pytorch_step(name, dtype):
    model = random_model(CONFIGS[name]).to(dtype)
    fused = StaticDecoder(model, 512, use_graphs=False, fused=True)
    plain = StaticDecoder(model, 512, use_graphs=False, fused=False)
    assert fused.fused and not plain.fused, fused.fused_off
    ids, tokens = ids_of(250), ids_of(10, seed=2)  # crosses the 256-key window at step 7
    a, b = steps(fused, ids, tokens), steps(plain, ids, tokens)
    scale = b.abs().max()
    assert (a - b).abs().max() <= ATOL[dtype] * scale, (a - b).abs().max() / scale
    assert torch.equal(a, steps(fused, ids, tokens))  # run after run


@torch.inference_mode()
@pytest.mark.parametrize("name", ["llama-bias-tied", "mistral-sliding-window"])
def test_greedy_tokens_of_the_fused_step_equal_the_pytorch_steps(name):
    model = random_model(CONFIGS[name])
    runs = []
    for fused in (True, False):
        decoder = StaticDecoder(model, 512, use_graphs=False, fused=fused)
        got = []
        decode(decoder, decoder.new_cache(), ids_of(20), 0,
               GenerationSettings(max_new_tokens=16, temperature=0.0, repetition_penalty=1.1), set(),
               lambda t: got.append(t) or True)
        runs.append(got)
    assert runs[0] == runs[1] and len(runs[0]) == 16


@torch.inference_mode()
def test_rotary_embedding_and_the_residual_add_are_bit_identical_in_bf16():
    from bonsai_ui.engine.decode_kernels import rms_norm, rope_and_cache

    g = torch.Generator().manual_seed(0)
    heads, kv, d, cap = 4, 2, 16, 32
    q, k, v = (torch.randn(n * d, generator=g).to(torch.bfloat16) for n in (heads, kv, kv))
    cos, sin = (torch.randn(cap, d, generator=g).to(torch.bfloat16) for _ in range(2))
    keys, values = torch.zeros(1, kv, cap, d, dtype=torch.bfloat16), \
        torch.zeros(1, kv, cap, d, dtype=torch.bfloat16)
    pos = torch.tensor([5])
    got = rope_and_cache(q, k, v, cos, sin, pos, keys, values, heads, kv)

    def rotate(x, n):
        x = x.view(1, n, 1, d)
        return (x * cos[5] + _rotate_half(x) * sin[5]).view(-1)

    assert torch.equal(got, rotate(q, heads))
    assert torch.equal(keys[0, :, 5].reshape(-1), rotate(k, kv))
    assert torch.equal(values[0, :, 5].reshape(-1), v)
    assert keys[0, :, :5].abs().sum() == 0 and keys[0, :, 6:].abs().sum() == 0

    class Norm(torch.nn.Module):
        variance_epsilon = 1e-6

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(64, generator=g).to(torch.bfloat16))

    norm, h, delta = Norm(), torch.randn(64, generator=g).to(torch.bfloat16), \
        torch.randn(64, generator=g).to(torch.bfloat16)
    want_h = h + delta
    out = rms_norm(h, norm.weight, 1e-6, delta)
    assert torch.equal(h, want_h)  # h now holds the residual sum, rounded as the eager add is
    torch.testing.assert_close(out, _rms_norm(norm, want_h), atol=2e-2, rtol=2e-2)
