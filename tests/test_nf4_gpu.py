"""The NF4 kernel compiled for a real GPU: its PTX table lookup, tensor-core sums and split-K
(the CPU tests run the same kernel in Triton's interpreter, the PTX in an emulator).

Skipped where CUDA is absent; on the GPU machine: ``python3 -m pytest tests/test_nf4_gpu.py``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SHAPES = [(3584, 3584, True), (512, 3584, True), (3584, 18944, False), (1000, 640, False)]


def quantized(n, k, blocksize=64, nested=True):
    import bitsandbytes.functional as BF

    torch.manual_seed(n + k)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    return BF.quantize_4bit(w, blocksize=blocksize, compress_statistics=nested, quant_type="nf4")


@pytest.mark.parametrize("n,k,has_bias", SHAPES)
@pytest.mark.parametrize("nested", [True, False])
def test_the_compiled_kernel_reads_bitsandbytes_weights_exactly(n, k, has_bias, nested):
    import bitsandbytes.functional as BF

    from bonsai_ui.engine.nf4_gemv import Config, from_quant_state, nf4_gemv

    packed, qs = quantized(n, k, nested=nested)
    w = from_quant_state(packed, qs)
    deq = BF.dequantize_4bit(packed, qs)
    cols = [0, 1, 63, 64, k // 2 + 1, k - 1]
    configs = [cfg for cfg in (Config(64, 256, 1), Config(64, 128, 2),
                               Config(64, 256, 7, prefetch=False), Config(128, 128, 1, 8),
                               Config(64, 128, 2, tensor_cores=True))
               if k % (cfg.block_k * cfg.split) == 0]
    for cfg in [None, *configs]:  # the fixed rule's pick, and the others that tile this K
        probe = torch.zeros(len(cols), k, device="cuda", dtype=torch.bfloat16)
        probe[torch.arange(len(cols)), torch.tensor(cols)] = 1
        got = torch.stack([nf4_gemv(p.view(1, k), w, None, cfg).view(-1) for p in probe], 1)
        assert torch.equal(got, deq[:, cols]), cfg
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16) if has_bias else None
    x = torch.randn(1, 1, k, device="cuda", dtype=torch.bfloat16)
    want = x.float().view(1, k) @ deq.float().T + (bias.float() if has_bias else 0)
    out = nf4_gemv(x, w, bias)
    torch.testing.assert_close(out.float().view(1, n), want, rtol=2 ** -7, atol=1e-3)
    assert all(torch.equal(out, nf4_gemv(x, w, bias)) for _ in range(20))


def test_nf4_linear_replays_in_a_cuda_graph():
    import bitsandbytes as bnb

    from bonsai_ui.engine.nf4_linear import NF4Linear

    base = bnb.nn.Linear4bit(3584, 512, bias=True, compute_dtype=torch.bfloat16, quant_type="nf4")
    base = base.to(torch.bfloat16).to("cuda")
    fast = NF4Linear(base)
    x = torch.randn(1, 1, 3584, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        eager = fast(x)
        torch.testing.assert_close(eager, base(x), rtol=2 ** -6, atol=2e-2)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fast(x)
        x.copy_(torch.randn_like(x))
        graph.replay()
        assert torch.equal(out, fast(x))  # split-K: the counters were reset by the replay
        first = out.clone()
        graph.replay()
        assert torch.equal(out, first)


# -- the re-laid-out kernel (--nf4-kernel relayout, nf4_relayout.py) --------------------------------

# every 7B and 32B linear, alone and as the kernel launches them fused: (name, parts, in_features,
# bias); q/k/v have a bias in Qwen2.5
RELAID_SHAPES = [
    ("7b q/k/v", (3584, 512, 512), 3584, True), ("7b o", (3584,), 3584, False),
    ("7b gate/up", (18944, 18944), 3584, False), ("7b down", (3584,), 18944, False),
    ("7b k alone", (512,), 3584, True),
    ("32b q/k/v", (5120, 1024, 1024), 5120, True), ("32b o", (5120,), 5120, False),
    ("32b gate/up", (27648, 27648), 5120, False), ("32b down", (5120,), 27648, False),
    ("0.5b q/k/v (K padded)", (896, 128, 128), 896, True),
]


@pytest.mark.parametrize("name,parts,k,has_bias", RELAID_SHAPES, ids=[s[0] for s in RELAID_SHAPES])
def test_the_relaid_kernel_reads_bitsandbytes_weights_exactly_and_repeats(name, parts, k, has_bias):
    import bitsandbytes.functional as BF

    from bonsai_ui.engine.nf4_relayout import (RelaidConfig, dequantize_relaid, relaid_gemv,
                                               relayout, unlayout)

    layers = [quantized(n, k) for n in parts]
    r = relayout(layers)
    deq = torch.cat([BF.dequantize_4bit(p, qs) for p, qs in layers])
    for (p, qs), (codes, absmax), w in zip(layers, unlayout(r), dequantize_relaid(r)):
        assert torch.equal(codes, p.view(-1))  # the re-layout round-trips on the GPU too
        nested = BF.dequantize_blockwise(qs.absmax, qs.state2)
        nested += qs.offset
        assert torch.equal(absmax, nested.float())  # bitsandbytes' CUDA absmax, bit for bit
        assert torch.equal(w, BF.dequantize_4bit(p, qs))
    cols = [0, 1, 63, 64, 255, 256, k // 2 + 1, k - 1]
    probe = torch.zeros(len(cols), k, device="cuda", dtype=torch.bfloat16)
    probe[torch.arange(len(cols)), torch.tensor(cols)] = 1
    units = -(-k // 256)
    configs = [None, RelaidConfig(sums="fma"), RelaidConfig(4, 2, 1), RelaidConfig(2, 1, 1, prefetch=False)]
    configs = [c for c in configs if c is None or units % c.units_per_warp == 0]
    for cfg in configs:  # the rule's pick, the CUDA-core sums, and a few others
        got = torch.stack([relaid_gemv(p.view(1, k), r, None, cfg).view(-1) for p in probe], 1)
        assert torch.equal(got, deq[:, cols]), cfg  # the compiled lookup: dequantize_4bit's values
    bias = torch.randn(sum(parts), device="cuda", dtype=torch.bfloat16) if has_bias else None
    x = torch.randn(1, 1, k, device="cuda", dtype=torch.bfloat16)
    want = x.float().view(1, k) @ deq.float().T + (bias.float() if has_bias else 0)
    for cfg in configs:
        out = relaid_gemv(x, r, bias, cfg)
        torch.testing.assert_close(out.float().view(1, -1), want, rtol=2 ** -7, atol=1e-3)
        assert all(torch.equal(out, relaid_gemv(x, r, bias, cfg)) for _ in range(20)), cfg


def test_relaid_linears_replay_fused_in_a_cuda_graph():
    import bitsandbytes as bnb

    from bonsai_ui.engine.nf4_linear import RelaidGroup, RelaidLinear

    torch.manual_seed(0)
    layers = [bnb.nn.Linear4bit(3584, n, bias=True, compute_dtype=torch.bfloat16, quant_type="nf4")
              .to(torch.bfloat16).to("cuda") for n in (3584, 512, 512)]
    group = RelaidGroup(layers)
    q, k, v = (RelaidLinear(m, group, i) for i, m in enumerate(layers))
    x = torch.randn(1, 1, 3584, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        eager = [q(x), k(x), v(x)]
        for got, m in zip(eager, layers):
            torch.testing.assert_close(got, m(x), rtol=2 ** -6, atol=2e-2)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs = [q(x), k(x), v(x)]  # one launch recorded
        x.copy_(torch.randn_like(x))
        graph.replay()
        fresh = [q(x), k(x), v(x)]
        assert all(torch.equal(a, b) for a, b in zip(outs, fresh))  # split-K counters reset
        first = [o.clone() for o in outs]
        graph.replay()
        assert all(torch.equal(a, b) for a, b in zip(outs, first))
