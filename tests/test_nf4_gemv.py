"""The NF4 Triton gemv's arithmetic, on the CPU in Triton's interpreter, against bitsandbytes.

bitsandbytes (CPU build) quantizes random weights exactly as it does on a GPU and de-quantizes them
with its own ``dequantize_4bit``: the kernel must read those stored bytes and reproduce those
de-quantized values bit for bit (checked column by column with unit inputs), and its product must
match a float64 product of them to the output dtype's rounding. The swap of whole layers
(``install_fast_linears``) runs on real ``Linear4bit`` modules and a real PEFT LoRA wrapper.
"""

from __future__ import annotations

import pytest
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as BF

from bonsai_ui.engine.nf4_gemv import (Config, from_quant_state, nf4_gemv, pick_config,
                                       quant_state_reason)
from bonsai_ui.engine.nf4_linear import NF4Linear, install_fast_linears, uninstall_fast_linears


@pytest.fixture(autouse=True, scope="module")
def interpreter():
    """Triton's interpreter (chosen by conftest.py before triton is imported: never a skip);
    bitsandbytes' CPU fallbacks eager, as its CUDA kernels compute (compiling them takes minutes
    on 2 cores)."""
    import triton

    assert triton.knobs.runtime.interpret, "TRITON_INTERPRET=1 must be set before triton is imported"
    with torch._dynamo.config.patch(disable=True):
        yield

# NF4 (QLoRA, Dettmers et al. 2023, appendix E): the 16 quantiles of N(0, 1) normalised to [-1, 1]
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
EPS = {torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11, torch.float32: 2 ** -20}


def quantize(n, k, blocksize, nested, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(n, k, generator=g) * 0.02).to(dtype)
    packed, qs = BF.quantize_4bit(weight, blocksize=blocksize, compress_statistics=nested,
                                  quant_type="nf4")
    return packed, qs


def columns(w, k, dtype, cols):
    """The kernel's de-quantized weights at ``cols``: the product with unit vectors."""
    out = []
    for c in cols:
        e = torch.zeros(1, k, dtype=dtype)
        e[0, c] = 1
        out.append(nf4_gemv(e, w).view(-1))
    return torch.stack(out, 1)


def test_bitsandbytes_stores_the_nf4_table_high_nibble_first():
    # byte 0x7F: high nibble 7 (0.0) is element 0, low nibble 15 (1.0) element 1
    qs = quantize(1, 64, 64, False, torch.bfloat16)[1]
    assert qs.code.tolist() == pytest.approx(NF4, abs=0)
    packed = torch.full((32, 1), 0x7F, dtype=torch.uint8)
    deq = BF.dequantize_4bit(packed, qs).view(-1)
    top = qs.absmax[0].to(torch.bfloat16).item()
    assert deq[:4].tolist() == [0.0, top, 0.0, top]
    w = from_quant_state(packed, qs)
    assert columns(w, 64, torch.bfloat16, [0, 1]).view(-1).tolist() == deq[:2].tolist()


CASES = [  # n, k, blocksize, nested, dtype, bias, config (None: the fixed rule, for the CPU)
    (64, 256, 64, True, torch.bfloat16, True, None),
    (40, 192, 64, False, torch.bfloat16, False, None),  # n not a multiple of block_n; k = 3 blocks
    (33, 512, 32, True, torch.float16, True, Config(64, 128, 2)),  # split-K, fp16, one run a block
    (24, 768, 64, False, torch.bfloat16, True, Config(64, 128, 3, prefetch=False)),
    (130, 384, 64, True, torch.bfloat16, False, Config(64, 128, 1)),  # 780 absmax: 4 nested blocks
    (72, 1024, 64, True, torch.bfloat16, True, Config(64, 256, 2, tensor_cores=True)),  # 2 tiles
    (40, 256, 32, True, torch.float16, False, Config(64, 128, 2, tensor_cores=True)),
]


@pytest.mark.parametrize("n,k,blocksize,nested,dtype,has_bias,config", CASES)
def test_the_kernel_reproduces_dequantize_4bit_and_its_product(n, k, blocksize, nested, dtype,
                                                               has_bias, config):
    packed, qs = quantize(n, k, blocksize, nested, dtype)
    assert qs.nested == nested and qs.dtype == dtype
    deq = BF.dequantize_4bit(packed, qs)  # bitsandbytes' own values, in dtype
    w = from_quant_state(packed, qs)
    assert quant_state_reason(qs, packed) is None
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1, k, generator=g).to(dtype)
    bias = (torch.randn(n, generator=g) * 0.1).to(dtype) if has_bias else None
    cols = [1, blocksize - 1, blocksize, k - 1]  # each a kernel run: the interpreter is slow
    # exactly bitsandbytes' de-quantized weights, every row, at block edges
    assert torch.equal(columns(w, k, dtype, cols), deq[:, cols])
    out = nf4_gemv(x, w, bias, config)
    assert out.shape == (1, 1, n) and out.dtype == dtype
    want = x.double().view(1, k) @ deq.double().T + (bias.double() if has_bias else 0)
    # float32 sums of products that are exact in float32, then one rounding to dtype
    scale = (x.double().abs() @ deq.double().abs().T).view(-1) + 1e-3
    err = (out.double().view(-1) - want.view(-1)).abs()
    assert (err <= EPS[dtype] * want.view(-1).abs() + 1e-5 * scale).all(), err.max()


def test_a_second_run_is_bit_identical():
    packed, qs = quantize(48, 512, 64, True, torch.bfloat16)
    w = from_quant_state(packed, qs)
    x = torch.randn(1, 512).to(torch.bfloat16)
    assert torch.equal(nf4_gemv(x, w), nf4_gemv(x, w))


RULE = [  # n, k, blocksize, sms -> block_k, split: programs of ~4 K tiles, >= 2 programs an SM
    (3584, 3584, 64, 132, 128, 7),  # 7B q/o: 28 K tiles in 7 splits of 4; 56 row tiles x 7 = 392
    (18944, 3584, 64, 132, 128, 7),  # 7B gate/up
    (512, 3584, 64, 132, 128, 14),  # 7B k/v: 8 x 7 = 56 programs < 264: 14 splits of 2 tiles
    (3584, 18944, 64, 132, 128, 37),  # 7B down: 148 K tiles = 37 x 4
    (5120, 27648, 64, 132, 128, 54),  # 32B down: 216 K tiles = 54 x 4
    (40, 192, 64, 132, 64, 1),  # K = 3 blocks: only the blocksize divides it, no split
]


@pytest.mark.parametrize("n,k,blocksize,sms,block_k,split", RULE)
def test_the_fixed_rule(n, k, blocksize, sms, block_k, split):
    assert pick_config(n, k, blocksize, sms) == Config(64, block_k, split)


REFUSED = [  # blocksize, dtype, code tweak -> the reason names it
    (128, torch.bfloat16, False, "blocksize 128"),
    (64, torch.float32, False, "weight dtype torch.float32"),
    (64, torch.bfloat16, True, "NF4 table differs"),
]


@pytest.mark.parametrize("blocksize,dtype,tweak,reason", REFUSED)
def test_what_the_kernel_cannot_read_exactly_is_refused_with_the_reason(blocksize, dtype, tweak,
                                                                        reason):
    packed, qs = quantize(64, 512, blocksize, True, dtype)
    if tweak:
        qs.code = qs.code.clone()
        qs.code[3] += 1e-3
    assert reason in quant_state_reason(qs, packed)
    with pytest.raises(ValueError, match="can't read"):
        from_quant_state(packed, qs)


def test_the_ptx_table_lookup_gives_dequantize_4bit_values_bit_for_bit():
    """The kernel's two PTX texts (the block's table; 8 weights a word by byte permutes), run
    instruction by instruction on the CPU (tests/ptx_emu.py), against bitsandbytes: every code
    at every position of a word, absmax over 40 binades, bf16 and fp16."""
    import numpy as np

    import ptx_emu  # tests/ (pytest puts the test directory on the path)

    from bonsai_ui.engine import nf4_gemv as K

    rng = np.random.default_rng(0)
    words = np.concatenate([np.array([sum(c << (4 * i) for i in range(8)) for c in range(16)],
                                     dtype=np.uint64),  # every code at every nibble
                            rng.integers(0, 2 ** 32, 4080, dtype=np.uint64)]).astype(np.uint32)
    absmax = (2.0 ** rng.uniform(-30, 10, len(words))).astype(np.float32)
    absmax[:3] = [0.0, 1.0, 65504.0]
    code = torch.tensor(NF4, dtype=torch.float32)
    nibbles = np.stack([(words >> (8 * j + s)) & 15 for j in range(4) for s in (4, 0)], 1)
    for dtype, table_asm in ((torch.bfloat16, K.TABLE_BF16), (torch.float16, K.TABLE_F16)):
        table = ptx_emu.run(table_asm.value, [absmax.view(np.uint32)], 8, words.shape)
        pairs = ptx_emu.run(K.LUT.value, [words] + table, 4, words.shape)
        got = np.stack([np.stack([p & 0xFFFF, p >> 16], 1) for p in pairs], 1).reshape(-1, 8)
        # dequantize_4bit's formula (csrc kDequantizeBlockwise): dtype(code[q] * absmax)
        want = (code[torch.from_numpy(nibbles.astype(np.int64))] * torch.from_numpy(absmax)[:, None])
        want = want.to(dtype).view(torch.int16).numpy().astype(np.uint16)
        assert np.array_equal(got.astype(np.uint16), want), dtype


def linear4bit(k, n, bias=True, quant_type="nf4", dtype=torch.bfloat16, seed=0):
    torch.manual_seed(seed)
    layer = bnb.nn.Linear4bit(k, n, bias=bias, compute_dtype=dtype, quant_type=quant_type,
                              compress_statistics=True)
    with torch.no_grad():
        layer.weight.data.normal_(0, 0.02)
        if bias:
            layer.bias.data.normal_(0, 0.1)
    layer = layer.to(dtype=dtype).to("cpu")  # Params4bit quantizes on its first .to(device)
    layer.support_avx512bf16_for_cpu = False  # keep bitsandbytes' stored layout on this CPU
    assert layer.weight.bnb_quantized
    return layer


def test_nf4_linear_matches_linear4bit_on_one_token_and_is_it_on_many():
    base = linear4bit(256, 96)
    fast = NF4Linear(base)
    x = torch.randn(1, 1, 256).to(torch.bfloat16)
    with torch.no_grad():
        want, got = base(x), fast(x)
        torch.testing.assert_close(got, want, rtol=2 ** -7, atol=1e-3)
        many = torch.randn(1, 5, 256).to(torch.bfloat16)
        assert torch.equal(fast(many), base(many))  # prefill goes to bitsandbytes itself
    assert fast.weight is base.weight and fast.bias is base.bias


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = linear4bit(128, 128, seed=1)
        self.down_proj = linear4bit(128, 64, bias=False, seed=2)
        self.fp4_proj = linear4bit(64, 64, quant_type="fp4", seed=3)
        self.norm = torch.nn.LayerNorm(64)

    def forward(self, x):
        return self.norm(self.fp4_proj(self.down_proj(self.q_proj(x))))


def test_install_swaps_what_it_can_read_and_names_the_rest():
    model = Block()
    x = torch.randn(1, 1, 128).to(torch.bfloat16)
    with torch.no_grad():
        want = model(x)
        note = install_fast_linears(model)
        assert note == ("NF4 Triton gemv on 2 of 3 4-bit layers (1 on bitsandbytes: "
                        "quant type 'fp4' (only nf4 is read))")
        assert isinstance(model.q_proj, NF4Linear) and isinstance(model.down_proj, NF4Linear)
        assert install_fast_linears(model) == note.replace("(1 on", "(1 on")  # idempotent
        torch.testing.assert_close(model(x), want, rtol=2 ** -6, atol=2e-2)
    assert uninstall_fast_linears(model) == 2
    assert isinstance(model.q_proj, bnb.nn.Linear4bit)
    assert install_fast_linears(torch.nn.Linear(4, 4)) == ""


def test_lora_adapters_still_apply_over_the_swapped_base_layer():
    import peft  # requirements-test.txt
    model = Block()
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"],
                                                      init_lora_weights=False))
    x = torch.randn(1, 1, 128).to(torch.bfloat16)
    layer = lora.base_model.model.q_proj
    with torch.no_grad():
        with_adapter = layer(x)
        with lora.disable_adapter():
            without = layer(x)
        assert (with_adapter - without).abs().max() > 1e-2  # the adapter changes the output
        install_fast_linears(lora)
        assert isinstance(layer.base_layer, NF4Linear)
        assert layer.get_base_layer() is layer.base_layer.base_layer  # PEFT still finds the Linear4bit
        torch.testing.assert_close(layer(x), with_adapter, rtol=2 ** -6, atol=2e-2)
        with lora.disable_adapter():
            torch.testing.assert_close(layer(x), without, rtol=2 ** -6, atol=2e-2)
