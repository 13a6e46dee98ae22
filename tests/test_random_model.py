"""bench/make_random_model.py's 4-bit build, at the tiny shape on the CPU.

On the GPU machine the same code builds the 32B shape (whose bf16 folder would not fit its disk):
each layer quantized as it is created, saved pre-quantized. Here: the folder must load through
transformers' own bitsandbytes path as pre-quantized NF4 with double quantization, holding the
very bytes that were built, and give the same logits.
"""

from __future__ import annotations

import json
import bitsandbytes as bnb
import pytest
import torch

from bench import make_random_model as M


@pytest.fixture(autouse=True, scope="module")
def eager():
    """bitsandbytes' CPU fallbacks eager (compiling them takes minutes on 2 cores)."""
    with torch._dynamo.config.patch(disable=True):
        yield


class Tokenizer:  # what build_config reads from a tokenizer
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 2

    def __len__(self):
        return 1000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    config = M.build_config("tiny", Tokenizer(), "bfloat16")
    model = M.build_quantized_model(config, "cpu", torch.bfloat16, seed=0)
    out = tmp_path_factory.mktemp("tiny-nf4")
    model.save_pretrained(out)
    return model, out


def test_every_decoder_linear_is_nf4_as_it_is_created(built):
    model, _ = built
    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linears) == 7 * M.SHAPES["tiny"]["num_hidden_layers"]
    for layer in linears:
        qs = layer.weight.quant_state
        assert (qs.quant_type, qs.blocksize, qs.nested, qs.dtype) == ("nf4", 64, True, torch.bfloat16)
    assert not [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
                if t.device.type == "meta"]
    assert model.lm_head.weight.dtype == torch.bfloat16  # as transformers leaves it


def test_the_folder_loads_pre_quantized_with_the_same_bytes_and_logits(built):
    from transformers import AutoModelForCausalLM

    model, folder = built
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "bitsandbytes" and qc["bnb_4bit_quant_type"] == "nf4"
    loaded = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu")
    mine = model.model.layers[1].mlp.down_proj.weight
    theirs = loaded.model.layers[1].mlp.down_proj.weight
    assert isinstance(loaded.model.layers[1].mlp.down_proj, bnb.nn.Linear4bit)
    assert torch.equal(mine.data, theirs.data)
    assert torch.equal(mine.quant_state.absmax, theirs.quant_state.absmax)
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
