"""The re-laid-out NF4 kernel (``--nf4-kernel relayout``, bonsai_ui/engine/nf4_relayout.py) on the
CPU: the load-time re-layout round-trips bitsandbytes' tensors exactly, over the Qwen2.5 7B and
32B layer shapes; the kernel's arithmetic, in Triton's interpreter, reproduces
``dequantize_4bit(W) @ x`` for every layer kind, fused q/k/v and gate/up included; and its PTX
(the block's table, the two-table byte-permute lookup, the tensor-core mma), run instruction by
instruction over the 32 lanes' registers as the re-layout places them, gives the tile's row sums.

bitsandbytes (CPU build) quantizes exactly as it does on a GPU and de-quantizes with its own
``dequantize_4bit``: everything here is compared with that.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import bitsandbytes.functional as BF

from bonsai_ui.engine.nf4_relayout import (GROUP, TILE_ABSMAX, TILE_WORDS, UNIT, RelaidConfig,
                                           dequantize_relaid, pick_relaid_config, relaid_gemv,
                                           relayout, relayout_reason, resolve_absmax, unlayout)


@pytest.fixture(autouse=True, scope="module")
def interpreter():
    """Triton's interpreter (chosen by conftest.py before triton is imported); bitsandbytes' CPU
    fallbacks eager."""
    import triton

    assert triton.knobs.runtime.interpret, "TRITON_INTERPRET=1 must be set before triton is imported"
    with torch._dynamo.config.patch(disable=True):
        yield


def quantize(n, k, nested=True, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(n, k, generator=g) * 0.02).to(dtype)
    return BF.quantize_4bit(weight, blocksize=64, compress_statistics=nested, quant_type="nf4")


def bnb_absmax(qs):
    """What dequantize_4bit multiplies by (its own two lines for the nested case)."""
    if not qs.nested:
        return qs.absmax
    absmax = BF.dequantize_blockwise(qs.absmax, qs.state2)
    absmax += qs.offset
    return absmax.float()


# Qwen2.5 layer shapes (out_features, in_features): 7B hidden 3584, intermediate 18944, 28 query
# heads and 4 key/value heads of 128; 32B hidden 5120, intermediate 27648, 40 and 8 heads. The
# attention shapes run at their real size; the MLP shapes (68-142 M weights: 5-12 s each to
# quantize on this CPU) run as stand-ins a quarter of the size in each dimension, the same aspect,
# whose in_features (896, 4736, 1280, 6912) are not whole 256-wide K units: the padding path too.
SHAPES = {
    "7b q/o": (3584, 3584), "7b k/v": (512, 3584),
    "7b gate/up, 1/4 stand-in": (4736, 896), "7b down, 1/4 stand-in": (896, 4736),
    "32b q/o": (5120, 5120), "32b k/v": (1024, 5120),
    "32b gate/up, 1/4 stand-in": (6912, 1280), "32b down, 1/4 stand-in": (1280, 6912),
}


@pytest.mark.parametrize("name", SHAPES)
def test_the_relayout_round_trips_exactly(name):
    n, k = SHAPES[name]
    packed, qs = quantize(n, k, seed=n + k)
    r = relayout([(packed, qs)])
    assert r.codes.dtype == torch.int32 and r.codes.numel() == r.groups * r.units * TILE_WORDS
    assert r.absmax.numel() == r.groups * r.units * TILE_ABSMAX
    (codes, absmax), = unlayout(r)
    assert torch.equal(codes, packed.view(-1))  # every code back where bitsandbytes put it
    # absmax resolved once, bit for bit what dequantize_4bit computes from the nested form
    assert torch.equal(absmax, bnb_absmax(qs)) and torch.equal(resolve_absmax(qs), absmax)


def test_fused_layers_round_trip_side_by_side_and_dequantize_bit_for_bit():
    """q, k and v of a 7B layer (their real rows, K cut to 1,024) as one re-laid-out weight, and
    each part's weights equal to dequantize_4bit's; fp16 and a layer without double quantization
    too."""
    layers = [quantize(3584, 1024, seed=1), quantize(512, 1024, seed=2),
              quantize(512, 1024, seed=3, nested=False)]
    r = relayout(layers)
    assert r.parts == (3584, 512, 512) and r.n == 4608
    for (packed, qs), (codes, absmax), w in zip(layers, unlayout(r), dequantize_relaid(r)):
        assert torch.equal(codes, packed.view(-1)) and torch.equal(absmax, bnb_absmax(qs))
        assert torch.equal(w, BF.dequantize_4bit(packed, qs))
    half = [quantize(96, 320, dtype=torch.float16, seed=4), quantize(40, 320, dtype=torch.float16, seed=5)]
    r = relayout(half)  # 136 rows: padded to 144; 320 inputs: padded to 512
    assert (r.groups, r.units) == (9, 2)
    for (packed, qs), w in zip(half, dequantize_relaid(r)):
        assert torch.equal(w, BF.dequantize_4bit(packed, qs))


def test_what_the_relayout_cannot_read_exactly_is_refused_with_the_reason():
    packed, qs = quantize(64, 512)
    assert relayout_reason(qs, packed) is None
    packed128, qs128 = BF.quantize_4bit(torch.randn(64, 512).to(torch.bfloat16), blocksize=128,
                                        compress_statistics=True, quant_type="nf4")
    assert "blocksize 128" in relayout_reason(qs128, packed128)
    fp4 = BF.quantize_4bit(torch.randn(64, 512).to(torch.bfloat16), blocksize=64, quant_type="fp4")
    assert "fp4" in relayout_reason(fp4[1], fp4[0])
    other = quantize(64, 256)
    with pytest.raises(ValueError, match="share in_features"):
        relayout([(packed, qs), other])


# -- the kernel, in Triton's interpreter ---------------------------------------------------------

# small stand-ins of every layer kind of a Qwen2.5 block (the interpreter runs ~10 K weights a
# second here): hidden 256 (one K unit), 2 query heads and 1 key/value head of 128, intermediate
# 640 (2.5 units: padded, and split over 3 programs); q/k/v have a bias, as Qwen2's do
KINDS = {  # name: parts (rows of each layer launched together), in_features, bias
    "q/k/v fused": ((256, 128, 128), 256, True),
    "o": ((256,), 256, False),
    "gate/up fused": ((640, 640), 256, False),
    "down": ((256,), 640, False),
    "k alone": ((128,), 256, True),
}


def product_case(parts, k, has_bias, dtype=torch.bfloat16, seed=0):
    layers = [quantize(n, k, dtype=dtype, seed=seed + i) for i, n in enumerate(parts)]
    deq = torch.cat([BF.dequantize_4bit(p, qs) for p, qs in layers])
    g = torch.Generator().manual_seed(seed + 99)
    x = torch.randn(1, 1, k, generator=g).to(dtype)
    bias = (torch.randn(sum(parts), generator=g) * 0.1).to(dtype) if has_bias else None
    return relayout(layers), deq, x, bias


def check_product(out, x, deq, bias, dtype):
    want = x.double().view(1, -1) @ deq.double().T + (bias.double() if bias is not None else 0)
    scale = (x.double().abs().view(1, -1) @ deq.double().abs().T).view(-1) + 1e-3
    err = (out.double().view(-1) - want.view(-1)).abs()
    eps = {torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11}[dtype]
    # float32 sums, then one rounding to the output dtype
    assert (err <= eps * want.view(-1).abs() + 1e-5 * scale).all(), err.max()


@pytest.mark.parametrize("kind", KINDS)
def test_the_kernel_reproduces_dequantize_4bit_times_x_for_every_layer_kind(kind):
    parts, k, has_bias = KINDS[kind]
    r, deq, x, bias = product_case(parts, k, has_bias)
    out = relaid_gemv(x, r, bias)  # the fixed rule's config on one "SM"
    assert out.shape == (1, 1, sum(parts)) and out.dtype == torch.bfloat16
    check_product(out, x, deq, bias, torch.bfloat16)
    assert torch.equal(out, relaid_gemv(x, r, bias))  # a second run: the same bits


CONFIGS = [  # the sum paths, splits, warps, row groups a warp walks, prefetch off, fp16
    (RelaidConfig(4, 1, 1, "mma"), torch.bfloat16),
    (RelaidConfig(2, 2, 1, "fma"), torch.bfloat16),
    (RelaidConfig(1, 4, 1, "mma", prefetch=False), torch.bfloat16),
    (RelaidConfig(2, 1, 1, "mma"), torch.float16),
    (RelaidConfig(4, 2, 1, "fma"), torch.float16),
]


@pytest.mark.parametrize("config,dtype", CONFIGS)
def test_every_path_of_the_kernel_gives_the_product(config, dtype):
    r, deq, x, bias = product_case((96, 40), 768, True, dtype=dtype, seed=7)  # 3 units, 9 groups
    out = relaid_gemv(x, r, bias, config)
    check_product(out, x, deq, bias, dtype)


def test_the_kernel_reads_bitsandbytes_weights_exactly():
    """Unit inputs: the output is a column of the kernel's de-quantized weights, which must be
    dequantize_4bit's own, at the edges of blocks, lanes and K units."""
    r, deq, _, _ = product_case((48, 16), 512, False, seed=11)
    for c in (0, 3, 4, 63, 64, 255, 256, 511):
        e = torch.zeros(1, 512, dtype=torch.bfloat16)
        e[0, c] = 1
        assert torch.equal(relaid_gemv(e, r).view(-1), deq[:, c]), c


RULE = [  # groups, units, sms -> warps, row groups a warp walks, units a warp
    (288, 14, 132, RelaidConfig(4, 1, 2)),  # 7B q/k/v fused: 72 x 7 programs
    (224, 14, 132, RelaidConfig(4, 1, 2)),  # 7B o: 56 x 7
    (2368, 14, 132, RelaidConfig(4, 4, 2)),  # 7B gate/up fused: 148 x 7
    (224, 74, 132, RelaidConfig(4, 2, 2)),  # 7B down: 28 x 37
    (3456, 20, 132, RelaidConfig(4, 8, 2)),  # 32B gate/up fused: 108 x 10
    (320, 108, 132, RelaidConfig(4, 4, 2)),  # 32B down: 20 x 54
    (48, 5, 1, RelaidConfig(4, 8, 1)),  # odd units: one a warp
]


@pytest.mark.parametrize("groups,units,sms,config", RULE)
def test_the_fixed_rule(groups, units, sms, config):
    assert pick_relaid_config(groups, units, sms) == config


# -- the PTX, instruction by instruction ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_ptx_path_gives_the_tiles_row_sums(dtype):
    """One warp's tiles, as the compiled kernel computes them: each lane's 16 words and 2 absmax
    read from where the re-layout put them, its input pairs from its block; the table and lookup
    PTX texts run by tests/ptx_emu.py, the mma by its model of the fragments (PTX ISA). The D it
    accumulates over a tile must hold, in every column, each of the 16 rows' sum over the tile's
    256 inputs of dequantize_4bit's weights times the input."""
    import ptx_emu  # tests/

    from bonsai_ui.engine import nf4_gemv as G
    from bonsai_ui.engine import nf4_relayout as R

    parts = (24, 8)  # 32 rows: 2 row groups; 512 inputs: 2 units
    r, deq, x, _ = product_case(parts, 512, False, dtype=dtype, seed=21)
    words = r.codes.view(r.groups, r.units, 4, 32, 4).numpy().view(np.uint32)
    absmax = r.absmax.view(r.groups, r.units, 32, 2).numpy()
    xpairs = x.view(-1).view(torch.int32).numpy().view(np.uint32)
    lane = np.arange(32)
    t = lane % 4
    kind = "bf16" if dtype == torch.bfloat16 else "f16"
    table_asm = (G.TABLE_BF16 if dtype == torch.bfloat16 else G.TABLE_F16).value
    sel = np.full(32, 0x32103210, dtype=np.uint32)
    for rg in range(r.groups):
        for u in range(r.units):
            ta = ptx_emu.run(table_asm, [absmax[rg, u, :, 0].view(np.uint32)], 8, (32,))
            tb = ptx_emu.run(table_asm, [absmax[rg, u, :, 1].view(np.uint32)], 8, (32,))
            xs = [xpairs[(u * UNIT + t * 64) // 2 + m] for m in range(32)]  # the lane's block
            d = [np.zeros(32, dtype=np.uint32) for _ in range(4)]
            for i in range(16):
                word = words[rg, u, i // 4, :, i % 4]
                p0, p1, p2, p3 = ptx_emu.run(R.LUT2.value, [word] + ta + tb + [sel], 4, (32,))
                d = ptx_emu.mma_m16n8k16([p0, p2, p1, p3], [xs[2 * i], xs[2 * i + 1]], d, kind)
            rows = rg * GROUP + np.arange(16)
            want = (deq[rows, u * UNIT:(u + 1) * UNIT].double() @ x.view(-1)[u * UNIT:(u + 1) * UNIT].double()).numpy()
            g = lane >> 2
            for reg, dr in ((0, 0), (1, 0), (2, 8), (3, 8)):
                got = d[reg].view(np.float32).astype(np.float64)
                np.testing.assert_allclose(got, want[g + dr], rtol=1e-5, atol=1e-6)


# -- the compiled kernel, for an H100/H200, on the CPU ---------------------------------------------

def test_the_sm90_build_keeps_every_operand_in_its_thread_and_under_4_instructions_a_weight():
    """The kernel compiled for sm_90 here (Triton's bundled ptxas; bench/nf4_sass.py): every
    [threads]-shaped tensor one element a thread, in thread order (the mma's fragments are each
    lane's own registers), no layout conversion through shared memory, no spills, one HMMA a word,
    and the hot part (a row group) under 4 instructions a weight (memory-bound on an H100 below
    ~4.4; nf4_gemv's loop counts 7.8)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # a real compile
    done = subprocess.run([sys.executable, str(root / "bench" / "nf4_sass.py"), "--only",
                           "relayout-mma", "--n", "18944", "--k", "3584"],  # the 7B gate_proj
                          capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["layout_conversions"] == 0 and row["spill_bytes"] == 0
    for layout in row["layouts"]:
        assert re.search(r"sizePerThread = \[1[],]", layout) and "threadsPerWarp = [32" in layout, layout
        assert "warpsPerCTA = [4" in layout, layout
    assert row["hmma_per_group"] == 16 * row["rule"]["units_per_warp"]
    assert row["instructions_per_weight"] < 4.0, row


# -- the swap of Linear4bit layers (--nf4-kernel relayout) ----------------------------------------

def linear4bit(k, n, bias=True, dtype=torch.bfloat16, seed=0, quant_type="nf4"):
    import bitsandbytes as bnb

    torch.manual_seed(seed)
    layer = bnb.nn.Linear4bit(k, n, bias=bias, compute_dtype=dtype, quant_type=quant_type,
                              compress_statistics=True)
    with torch.no_grad():
        layer.weight.data.normal_(0, 0.02)
        if bias:
            layer.bias.data.normal_(0, 0.1)
    layer = layer.to(dtype=dtype).to("cpu")  # Params4bit quantizes on its first .to(device)
    layer.support_avx512bf16_for_cpu = False  # keep bitsandbytes' stored layout on this CPU
    return layer


class Attention(torch.nn.Module):
    def __init__(self, hidden=256, kv=128):
        super().__init__()
        self.q_proj = linear4bit(hidden, hidden, seed=1)
        self.k_proj = linear4bit(hidden, kv, seed=2)
        self.v_proj = linear4bit(hidden, kv, seed=3)
        self.o_proj = linear4bit(hidden, hidden, bias=False, seed=4)


class MLP(torch.nn.Module):
    def __init__(self, hidden=256, inter=384):
        super().__init__()
        self.gate_proj = linear4bit(hidden, inter, bias=False, seed=5)
        self.up_proj = linear4bit(hidden, inter, bias=False, seed=6)
        self.down_proj = linear4bit(inter, hidden, bias=False, seed=7)
        self.fp4_proj = linear4bit(hidden, 64, bias=False, seed=8, quant_type="fp4")


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = Attention()
        self.mlp = MLP()


def dense(layer):
    w = BF.dequantize_4bit(layer.weight.data, layer.weight.quant_state).double()
    return w, (layer.bias.double() if layer.bias is not None else 0)


@pytest.fixture()
def launches(monkeypatch):
    """Counts the kernel's launches."""
    from bonsai_ui.engine import nf4_relayout

    count = [0]
    real = nf4_relayout.relaid_gemv

    def counted(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(nf4_relayout, "relaid_gemv", counted)
    return count


def test_relayout_swaps_fuses_siblings_and_names_what_it_cannot_read(launches):
    from bonsai_ui.engine.nf4_linear import RelaidLinear, install_fast_linears, uninstall_fast_linears

    block = Block()
    attn, mlp = block.self_attn, block.mlp
    x = torch.randn(1, 1, 256).to(torch.bfloat16)
    with torch.no_grad():
        want = {name: getattr(m, name)(x) for m, names in
                ((attn, ("q_proj", "k_proj", "v_proj", "o_proj")), (mlp, ("gate_proj", "up_proj")))
                for name in names}
        note = install_fast_linears(block, "relayout")
        assert note.startswith("NF4 re-laid-out kernel on 7 of 8 4-bit layers (1 on bitsandbytes: "
                               "quant type 'fp4' (only nf4 is read)); 2 q/k/v and gate/up groups "
                               "fused into one launch each; re-laid-out copy "), note
        assert all(isinstance(getattr(attn, n), RelaidLinear) for n in ("q_proj", "k_proj", "v_proj"))
        assert attn.q_proj._group is attn.v_proj._group and mlp.gate_proj._group is mlp.up_proj._group
        assert attn.o_proj._group is not attn.q_proj._group
        # a decoder's step: q, k, v with the same input -- one launch; gate, up -- one launch
        got = {n: getattr(attn, n)(x) for n in ("q_proj", "k_proj", "v_proj")}
        assert launches[0] == 1
        got.update(gate_proj=mlp.gate_proj(x), up_proj=mlp.up_proj(x), o_proj=attn.o_proj(x))
        assert launches[0] == 3
        for name, out in got.items():
            layer = getattr(attn if name in ("q_proj", "k_proj", "v_proj", "o_proj") else mlp, name)
            w, b = dense(layer.base_layer)
            exact = x.double().view(1, -1) @ w.T + b
            assert out.shape == want[name].shape and out.dtype == torch.bfloat16
            assert (out.double().view(-1) - exact.view(-1)).abs().max() <= 2 ** -8 * exact.abs().max() + 1e-4
            torch.testing.assert_close(out, want[name], rtol=2 ** -6, atol=2e-2)  # bitsandbytes' own
        # k again with the same input: its slice was taken, so a new launch (never a stale one)
        assert torch.equal(attn.k_proj(x), got["k_proj"]) and launches[0] == 4
        many = torch.randn(1, 5, 256).to(torch.bfloat16)
        assert torch.equal(attn.q_proj(many), attn.q_proj.base_layer(many))  # prefill: bitsandbytes
        assert install_fast_linears(block, "relayout").startswith("NF4 re-laid-out kernel on 7 of 8")
    assert uninstall_fast_linears(block) == 7
    assert not any(isinstance(m, RelaidLinear) for m in block.modules())


def test_lora_wrapped_siblings_still_fuse_and_keep_their_adapters():
    import peft  # requirements-test.txt

    from bonsai_ui.engine.nf4_linear import RelaidLinear, install_fast_linears

    block = Block()
    lora = peft.get_peft_model(block, peft.LoraConfig(r=4, lora_alpha=8,
                                                      target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
    attn = lora.base_model.model.self_attn
    x = torch.randn(1, 1, 256).to(torch.bfloat16)
    with torch.no_grad():
        want = [attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)]
        install_fast_linears(lora, "relayout")
        assert isinstance(attn.q_proj.base_layer, RelaidLinear) and isinstance(attn.k_proj, RelaidLinear)
        assert attn.q_proj.base_layer._group is attn.k_proj._group is attn.v_proj.base_layer._group
        got = [attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)]
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=2 ** -6, atol=2e-2)


def test_the_static_decoders_fused_step_takes_the_relayout_kernel_without_changes(launches):
    """A one-layer Qwen2 in 4-bit, the static decoder's one-token step (decode_kernels' fused step,
    as on a GPU): 4 launches a layer (q/k/v, o, gate/up, down), and the logits of the
    bitsandbytes step."""
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM, Qwen2Config

    from bonsai_ui.engine.nf4_linear import install_fast_linears
    from bonsai_ui.engine.static_decoder import StaticDecoder

    config = Qwen2Config(vocab_size=300, hidden_size=256, intermediate_size=384,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=1024, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    layer = model.model.layers[0]
    for holder, names in ((layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                          (layer.mlp, ("gate_proj", "up_proj", "down_proj"))):
        for i, name in enumerate(names):
            old = getattr(holder, name)
            new = linear4bit(old.in_features, old.out_features, bias=old.bias is not None, seed=i)
            setattr(holder, name, new)
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 7
    ids = ids = torch.randint(0, 300, (12,), generator=torch.Generator().manual_seed(3)).tolist()
    with torch.no_grad():
        decoder = StaticDecoder(model, 512, use_graphs=False, fused=True)
        cache = decoder.new_cache()
        decoder.prefill(cache, ids, 0)
        token = torch.tensor([7])
        want = decoder.step(cache, token, len(ids)).clone()  # bitsandbytes' products
        assert launches[0] == 0
        install_fast_linears(model, "relayout")
        got = decoder.step(cache, token, len(ids))
    assert launches[0] == 4
    assert (got - want).abs().max() <= 0.02 * want.abs().max(), (got - want).abs().max()
