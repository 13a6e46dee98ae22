"""Build a random-weight Qwen2 model of a real shape and save it as a normal Hugging Face folder.

Not a benchmark: it makes the models that bench/gpu.sh measures (seconds to a minute on a GPU,
most of it saving the folder), and tests/test_random_model.py checks it on the CPU.

Why: the GPU machine reaches no model hub and this workplace has no Qwen2.5 weights anywhere, but
generation speed depends on the shape of the network (layers, hidden size, heads, KV heads) and not on
the values of its weights. So for speed measurements we build a Qwen2ForCausalLM with the exact
Qwen2.5-0.5B / 7B / 32B layer shapes, fill it with random weights (normal, std 0.02), pair it with a
real tokenizer (e.g. SmolLM2's, exported to .gpu_assets/smollm2-tokenizer) and save it like any
downloaded model, so the app's engines load it exactly as they would load a user's folder.
The text it generates is meaningless: these models measure speed, never quality.

Differences from the real checkpoints: the vocabulary is the tokenizer's (len(tokenizer) rounded up to a
multiple of 64, e.g. 49152 for SmolLM2 instead of Qwen2.5's 151936/152064), so the embedding and lm_head
are smaller than the real ones (for the 7B shape about 0.37B fewer parameters in lm_head).

Weights are allocated directly on the target device (CUDA by default when available) with PyTorch's and
transformers' own initialisation switched off, then filled in place with normal_(std=0.02) (norms 1,
biases 0) -- seconds on a GPU instead of many minutes of CPU init for 7B/32B. The 'tiny' shape is for CPU
tests.

With ``--quantize nf4`` the model is quantized as it is created and saved pre-quantized, the way
an Unsloth "-bnb-4bit" folder is (bitsandbytes NF4, blocksize 64, double quantization, bf16
compute, lm_head and embeddings in bf16): the model skeleton is built on the meta device, then each
linear layer's bf16 weight is drawn on the device and handed straight to bitsandbytes, one at a
time, so the bf16 model never exists whole -- the 32B shape needs ~0.3 GB of bf16 at a time and
its folder is ~18 GB instead of 62 GiB (which the GPU machine's 64 GiB disk can't hold).

usage:
  python bench/make_random_model.py --shape qwen2.5-7b --tokenizer .gpu_assets/smollm2-tokenizer \
      --out /tmp/qwen2.5-7b-random [--dtype bfloat16] [--device cuda|cpu] [--layers N] [--seed 0]
      [--quantize nf4]

Sizes in bf16: tiny ~26 MB, 0.5B ~0.9 GB, 7B ~14 GB, 32B ~62 GiB (mind the disk: the single-GPU
machine has 64 GiB; use --layers to build fewer layers of the same shape if needed).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time

SHAPES = {
    # Qwen2.5-7B(-Instruct) config.json
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
    # Qwen2.5-0.5B(-Instruct)
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    # Qwen2.5-32B(-Instruct)
    "qwen2.5-32b": dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64,
                        num_attention_heads=40, num_key_value_heads=8, tie_word_embeddings=False),
    # tiny, for CPU tests
    "tiny": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
}
COMMON = dict(rope_theta=1_000_000.0, rms_norm_eps=1e-6, max_position_embeddings=32768,
              hidden_act="silu", use_sliding_window=False, attention_dropout=0.0)


def _no_init():
    """transformers' context that turns torch.nn.init and PreTrainedModel.init_weights into no-ops."""
    for modname in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            mod = __import__(modname, fromlist=["no_init_weights"])
            return mod.no_init_weights()
        except (ImportError, AttributeError):
            continue
    return contextlib.nullcontext()  # older/newer transformers: init runs, just slower


def build_config(shape: str, tokenizer, dtype: str, layers: int | None = None):
    from transformers import Qwen2Config

    spec = dict(SHAPES[shape])
    if layers:
        spec["num_hidden_layers"] = layers
    vocab = int(math.ceil(len(tokenizer) / 64) * 64)
    common = dict(COMMON)
    rope_theta = common.pop("rope_theta")
    cfg = Qwen2Config(
        vocab_size=vocab,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_window_layers=spec["num_hidden_layers"],
        **common, **spec,
    )
    cfg.dtype = dtype
    return cfg


def _skeleton(config, device: str, dtype, seed: int, at: str):
    """Seeded, then the model constructed on ``at`` with parameters in ``dtype``, uninitialised."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(seed)
    old_default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(at), _no_init():
            return Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(old_default)


def build_model(config, device: str, dtype, seed: int = 0):
    import torch

    # Parameters are created straight on the device, uninitialised; buffers (RoPE inv_freq)
    # are computed normally by the constructors.
    model = _skeleton(config, device, dtype, seed, at=device)
    # Like from_pretrained(dtype=...): parameters in `dtype`, RoPE's inv_freq buffer stays float32.
    wrong = {p.dtype for p in model.parameters()} - {dtype}
    assert not wrong, f"parameters in {wrong}, expected {dtype}"

    std = config.initializer_range  # 0.02
    with torch.no_grad():
        seen = set()
        for name, p in model.named_parameters(remove_duplicate=True):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(mean=0.0, std=std)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    return model


LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NF4_BLOCKSIZE = 64  # bitsandbytes' and transformers' default for 4-bit


def bnb_config(dtype):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
                              bnb_4bit_quant_storage="uint8")


def nf4_linear(linear, device, dtype, std):
    """A bitsandbytes Linear4bit for ``linear`` (on meta), its random weight drawn on ``device``
    and quantized there at once: only this one layer's bf16 weight ever exists."""
    import bitsandbytes as bnb
    import torch

    out_f, in_f = linear.out_features, linear.in_features
    with torch.device("meta"):
        layer = bnb.nn.Linear4bit(in_f, out_f, bias=linear.bias is not None, compute_dtype=dtype,
                                  compress_statistics=True, quant_type="nf4",
                                  quant_storage=torch.uint8)
    weight = torch.empty(out_f, in_f, dtype=dtype, device=device).normal_(0.0, std)
    layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, blocksize=NF4_BLOCKSIZE,
                                     compress_statistics=True, quant_type="nf4",
                                     quant_storage=torch.uint8, module=layer)._quantize(device)
    del weight
    if linear.bias is not None:
        layer.bias = torch.nn.Parameter(torch.zeros(out_f, dtype=dtype, device=device),
                                        requires_grad=False)
    return layer


def build_quantized_model(config, device: str, dtype, seed: int = 0):
    """The model with every decoder linear in NF4, built one layer at a time (see the docstring)."""
    import torch

    model = _skeleton(config, device, dtype, seed, at="meta")
    std = config.initializer_range
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in LINEAR_NAMES:
                if hasattr(parent, name):
                    setattr(parent, name, nf4_linear(getattr(parent, name), device, dtype, std))
    # the rest (embeddings, norms, lm_head) in dtype; buffers (RoPE) recomputed on the device
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.device.type != "meta":
                continue
            value = torch.empty(p.shape, dtype=dtype, device=device)
            if name == "weight" and "Norm" in type(module).__name__:
                value.fill_(1.0)
            elif name == "bias":
                value.zero_()
            else:
                value.normal_(0.0, std)
            setattr(module, name, torch.nn.Parameter(value, requires_grad=False))
    with torch.device(device):  # its inv_freq buffer was computed on meta: compute it for real
        model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    config.quantization_config = bnb_config(dtype)
    model.eval()
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--tokenizer", required=True, help="folder of a saved tokenizer (save_pretrained)")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--layers", type=int, default=None,
                    help="override the number of layers (same per-layer shape); default: the real count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quantize", choices=["nf4"], default=None,
                    help="quantize each layer as it is created and save a pre-quantized "
                         "bitsandbytes 4-bit folder (needed for 32B on a 64 GiB disk)")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoTokenizer, GenerationConfig

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and args.shape != "tiny":
        print(f"warning: building {args.shape} on the CPU; this is meant for a GPU", file=sys.stderr)
    dtype = getattr(torch, args.dtype)

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    config = build_config(args.shape, tok, args.dtype, args.layers)
    build = build_quantized_model if args.quantize else build_model
    model = build(config, device, dtype, args.seed)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    n_params = sum(p.numel() for p in model.parameters())  # packed 4-bit: two weights a byte
    if args.quantize:
        n_params += sum(p.numel() for n_, p in model.named_parameters() if p.dtype == torch.uint8)

    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    t2 = time.perf_counter()
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"{args.shape}: {n_params / 1e9:.3f}B params, vocab {config.vocab_size}, "
          f"{config.num_hidden_layers} layers, {args.dtype}{' ' + args.quantize if args.quantize else ''} on {device}; built in {t1 - t0:.1f}s, "
          f"saved in {t2 - t1:.1f}s to {args.out} ({size / 2**30:.2f} GiB); "
          f"eos={tok.eos_token!r} ({tok.eos_token_id})")
    return args.out


if __name__ == "__main__":
    main()
