"""Decoding with a static KV cache and, on CUDA, one CUDA graph per step.

Why this exists: at batch 1, ``model.generate`` on a GPU spends most of each token in Python and in
kernel launches, not in reading weights (an H100 ran a 7B 4-bit model at ~5 % of its memory-bandwidth
ceiling). Replaying a captured CUDA graph launches the whole forward pass of one token at once.
A graph needs fixed tensor addresses, so the KV cache is one preallocated buffer, written in place at
a position held in a device tensor; attention reads a power-of-two window of it (one graph per window
size, all captured at load) so that a short prompt does not pay for reading the whole context.

The forward pass is written here for the Llama family (Llama, Mistral, Qwen2: pre-norm decoder,
RoPE, grouped-query attention, SwiGLU), calling the model's own linear modules, so bitsandbytes 4-bit
layers and LoRA adapters work unchanged. Anything else reports itself as unsupported and the backend
keeps using ``generate``. The same code runs eagerly on the CPU, where tests compare it with the
model's own forward pass in float32.

The static cache also makes prefix reuse simple: keeping the first ``k`` positions of a session's
cache is just starting the next prefill at ``k``.

Same input, same tokens (docs/exactness.md): every prefill runs in PREFILL_CHUNK-token chunks at absolute
positions 0, C, 2C, ... and a kept prefix is cut back to a chunk boundary (``reuse.reusable``), so a
regenerate computes each position exactly as a full re-encode does; attention is two matrix
products and a softmax in a prefill and decode_kernels' fixed-order kernel in a step (never cuDNN's
fused kernel, which parted identical runs); sampled tokens draw
their noise from a generator seeded by (seed, position), never from a stream shared across steps
or runs; top-p sums in a fixed order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .reuse import reusable

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
MIN_WINDOW = 256  # smallest attention window a graph is captured for
# Tokens per prefill chunk, the unit of prefix reuse. 256: a 2k-token prompt is 9 chunks (at 4-bit
# each chunk de-quantizes every weight once, ~7 ms at 7B on an H200), and a late edit recomputes at
# most one chunk beyond the edit.
PREFILL_CHUNK = 256


def unsupported_reason(model) -> str | None:
    """Why the static decoder can't run this model, or None when it can."""
    config = model.config
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {config.model_type!r} (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    if getattr(config, "use_sliding_window", False):
        return "sliding-window attention"
    rope_type = _rope_parameters(config).get("rope_type", "default")
    if rope_type not in ("default", "linear", "llama3", "yarn"):
        return f"RoPE type {rope_type!r}"
    return None


def _rope_parameters(config) -> dict:
    rp = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rp = dict(rp)
    if "rope_type" not in rp and "type" in rp:
        rp["rope_type"] = rp["type"]
    return rp


def rope_tables(config, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for positions 0..length-1 in float32, as transformers computes them."""
    rp = _rope_parameters(config)
    rope_type = rp.get("rope_type", "default")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if rope_type == "default":
        theta = rp.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device)
                                    .float() / head_dim))
        scale = 1.0
    else:
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        inv_freq, scale = ROPE_INIT_FUNCTIONS[rope_type](config, device)
    freqs = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq.float())
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * scale, emb.sin() * scale


def _eps(norm) -> float:
    return getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-6)


def fused_reason(decoder) -> str | None:
    """Why the one-token step can't take decode_kernels' fused kernels, or None when it can."""
    if decoder.head_dim & (decoder.head_dim - 1):
        return f"head_dim {decoder.head_dim} is not a power of two"
    norms = [decoder.inner.norm] + [n for layer in decoder.layers
                                    for n in (layer.input_layernorm, layer.post_attention_layernorm)]
    if any(n.weight.dtype != decoder.dtype for n in norms):
        return "RMSNorm weights not in the model's dtype"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "Triton is not installed"
    return None


def _rms_norm(norm, x: torch.Tensor) -> torch.Tensor:
    eps = _eps(norm)
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return norm.weight * x.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass
class KVCache:
    """Preallocated keys and values, the tokens whose entries are valid, and the graphs bound to them."""

    keys: list[torch.Tensor]  # per layer: (1, kv_heads, capacity, head_dim)
    values: list[torch.Tensor]
    tokens: list[int] = field(default_factory=list)
    prefilled: int = 0  # the first positions of ``tokens`` written by a prefill (reusable ones)
    graphs: dict = field(default_factory=dict)  # window or ("chunk", window) -> (graph, logits)


class StaticDecoder:
    """Prefill and single-token steps over a :class:`KVCache`, from CUDA graphs where captured.

    ``self.cache`` gets every graph at load (``capture_all``); other caches (tests) capture a step's
    graph when first needed.
    """

    def __init__(self, model, length: int, use_graphs: bool | None = None,
                 fused: bool | None = None):
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"the static decoder does not support {reason}")
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a LoRA model
        self.model = base
        self.inner = base.model
        self.layers = list(self.inner.layers)
        config = base.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.length = length
        # room for the last chunk's padding: buffers are a whole number of chunks
        self.capacity = -(-length // PREFILL_CHUNK) * PREFILL_CHUNK
        # Mistral applies its sliding window on every layer (Qwen2's per-layer kind is unsupported)
        self.sliding_window = getattr(config, "sliding_window", None) \
            if config.model_type == "mistral" else None
        self.device = self.inner.embed_tokens.weight.device
        self.dtype = self.inner.embed_tokens.weight.dtype
        cos, sin = rope_tables(config, self.capacity, self.device)
        self.cos, self.sin = cos.to(self.dtype), sin.to(self.dtype)
        self.positions = torch.arange(self.capacity, device=self.device)
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else use_graphs
        # step inputs: graphs read these fixed tensors, so a step only rewrites their contents
        self.step_ids = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        self.step_pos = torch.zeros((1,), dtype=torch.long, device=self.device)
        self.chunk_ids = torch.zeros((1, PREFILL_CHUNK), dtype=torch.long, device=self.device)
        self.chunk_pos = torch.zeros((PREFILL_CHUNK,), dtype=torch.long, device=self.device)
        self.chunk_last = torch.zeros((1,), dtype=torch.long, device=self.device)
        # the one-token step through decode_kernels' Triton kernels (CUDA; tests: the interpreter)
        wanted = self.device.type == "cuda" if fused is None else fused
        self.fused_off = fused_reason(self) if wanted else None  # why a wanted fused step can't run
        self.fused = wanted and self.fused_off is None
        if self.fused:
            from .decode_kernels import AttentionScratch

            self._scratch = AttentionScratch(self.heads, self.head_dim, self.device)
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self._capture_lock = threading.Lock()
        self.cache = self.new_cache()  # the one the backend uses; tests make more

    def windows(self) -> list[int]:
        """Every value ``window_for`` can return: MIN_WINDOW doubling, the last one the capacity."""
        windows = [min(MIN_WINDOW, self.capacity)]
        while windows[-1] < self.capacity:
            windows.append(min(windows[-1] * 2, self.capacity))
        return windows

    def capture_all(self, cache: KVCache) -> None:
        """Capture every window's graph now (at load), so no token ever waits for a capture."""
        if self.use_graphs:
            for window in self.windows():
                if window not in cache.graphs:
                    self._capture(cache, window)
                if ("chunk", window) not in cache.graphs:
                    self._capture(cache, window, chunk=True)

    @staticmethod
    def save(cache: KVCache) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]]:
        """A copy of the cache's valid entries only, to restore later (far smaller than the cache)."""
        n = cache.prefilled  # only these can ever be reused
        return (list(cache.tokens[:n]), [k[:, :, :n].clone() for k in cache.keys],
                [v[:, :, :n].clone() for v in cache.values])

    @staticmethod
    def restore(cache: KVCache, saved) -> None:
        tokens, keys, values = saved
        n = len(tokens)
        for dst, src in zip(cache.keys + cache.values, keys + values):
            dst[:, :, :n].copy_(src)
        cache.tokens = list(tokens)
        cache.prefilled = n

    def reusable(self, cache: KVCache, ids: list[int]) -> int:
        """Positions of ``cache`` that a prefill of ``ids`` may keep (whole chunks, see reuse.py)."""
        return reusable(cache.tokens, ids, cache.prefilled, PREFILL_CHUNK)

    def new_cache(self) -> KVCache:
        shape = (1, self.kv_heads, self.capacity, self.head_dim)
        n = len(self.layers)
        return KVCache([torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(n)],
                       [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(n)])

    # -- the forward pass ----------------------------------------------------------------------

    def _forward(self, cache: KVCache, ids: torch.Tensor, pos: torch.Tensor, window: int,
                 mask: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the last position; writes keys and values at ``pos`` into the cache.

        ``ids`` (1, n) sit at positions ``pos`` (n,); queries see keys ``0..window-1`` where ``mask``
        (n, window) allows; ``last`` (1,) picks the position whose logits are returned (default the
        final one). No Python branch depends on tensor values, so a CUDA graph can record it.
        """
        n = ids.shape[1]
        h = self.inner.embed_tokens(ids)
        cos = self.cos.index_select(0, pos)[None, None]  # (1, 1, n, d)
        sin = self.sin.index_select(0, pos)[None, None]
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = _rms_norm(layer.input_layernorm, h)
            q = attn.q_proj(x).view(1, n, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(1, n, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(1, n, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cache.keys[i].index_copy_(2, pos, k)
            cache.values[i].index_copy_(2, pos, v)
            out = self._attention(q, cache.keys[i][:, :, :window], cache.values[i][:, :, :window],
                                  mask)
            h = h + attn.o_proj(out)
            x = _rms_norm(layer.post_attention_layernorm, h)
            mlp = layer.mlp
            h = h + mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
        h = h[:, -1:] if last is None else h.index_select(1, last)
        return self.model.lm_head(_rms_norm(self.inner.norm, h))[:, -1].float()

    def _forward_fused(self, cache: KVCache, ids: torch.Tensor, pos: torch.Tensor,
                       window: int) -> torch.Tensor:
        """One token's logits, as ``_forward``, with decode_kernels' fused kernels around the
        model's own linear modules: 4 kernels a layer besides the products, not ~40."""
        from .decode_kernels import decode_attention, rms_norm, rope_and_cache

        h = self.inner.embed_tokens(ids).view(-1)
        delta = None
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = rms_norm(h, layer.input_layernorm.weight, _eps(layer.input_layernorm), delta)
            x = x.view(1, 1, -1)
            q = rope_and_cache(attn.q_proj(x).view(-1), attn.k_proj(x).view(-1),
                               attn.v_proj(x).view(-1), self.cos, self.sin, pos, cache.keys[i],
                               cache.values[i], self.heads, self.kv_heads)
            out = decode_attention(q, cache.keys[i], cache.values[i], pos, window, self.heads,
                                   self.kv_heads, self._scratch, self.sliding_window)
            delta = attn.o_proj(out.view(1, 1, -1)).view(-1)
            x = rms_norm(h, layer.post_attention_layernorm.weight,
                         _eps(layer.post_attention_layernorm), delta).view(1, 1, -1)
            mlp = layer.mlp
            delta = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x)).view(-1)
        x = rms_norm(h, self.inner.norm.weight, _eps(self.inner.norm), delta)
        return self.model.lm_head(x.view(1, 1, -1))[:, -1].float()

    def _attention(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
        """Grouped-query attention as two matrix products and a softmax: (1, n, heads * head_dim).

        Written out rather than through SDPA, whose kernel on Hopper (cuDNN's) gave identical
        inputs different outputs inside the decoder (7B, H200: identical runs agreed on 43 and 21
        tokens of 1,000) while this gave the same tokens in every repeat. The
        query heads that share a key/value head are stacked as rows, so keys and values are read
        once, not copied per head; scores in the model's dtype, softmax in float32 (as Unsloth's
        own decode does).
        """
        n, group = q.shape[2], self.heads // self.kv_heads
        q = (q * self.head_dim ** -0.5).reshape(1, self.kv_heads, group * n, self.head_dim)
        scores = torch.matmul(q, keys.transpose(-1, -2))  # (1, kv_heads, group * n, window)
        scores = scores.masked_fill(~mask.repeat(group, 1), float("-inf"))
        probs = scores.float().softmax(-1).to(values.dtype)
        out = torch.matmul(probs, values).view(1, self.heads, n, self.head_dim)
        return out.transpose(1, 2).reshape(1, n, self.heads * self.head_dim)

    def _mask(self, pos: torch.Tensor, window: int) -> torch.Tensor:
        """(queries, window) booleans: causal, and within Mistral's sliding window where it has one."""
        keys = self.positions[:window][None, :]
        mask = keys <= pos[:, None]
        if self.sliding_window:
            mask = mask & (keys > pos[:, None] - self.sliding_window)
        return mask

    def prefill(self, cache: KVCache, ids: list[int], start: int) -> torch.Tensor:
        """Run ``ids[start:]`` (the first ``start`` positions are already in the cache).

        Always in PREFILL_CHUNK-token chunks at absolute positions, from captured graphs on CUDA:
        the same computation for a position whether the prompt is encoded whole or from a kept
        prefix, and for a short rest (a regenerate after a late edit) no eager launches.
        """
        if start % PREFILL_CHUNK:
            raise ValueError(f"a prefill starts at a chunk boundary, not at {start}")
        n = len(ids)
        # entries from ``start`` on are about to be overwritten: should this fail half-way, the
        # cache must not claim them for the old tokens
        del cache.tokens[start:]
        cache.prefilled = min(cache.prefilled, start)
        logits = None
        for at in range(start, n, PREFILL_CHUNK):
            logits = self._prefill_chunk(cache, ids[at:at + PREFILL_CHUNK], at)
        cache.tokens = list(ids)
        cache.prefilled = n
        return logits

    def _prefill_chunk(self, cache: KVCache, ids: list[int], start: int) -> torch.Tensor:
        """Up to PREFILL_CHUNK tokens at ``start``, padded; the padding writes entries past the
        real ones, which nothing reads before a later step overwrites them (they are masked)."""
        m = len(ids)
        padded = ids + [ids[-1]] * (PREFILL_CHUNK - m)
        self.chunk_ids.copy_(torch.tensor([padded], dtype=torch.long), non_blocking=True)
        self.chunk_pos.copy_(self.positions[start:start + PREFILL_CHUNK])
        self.chunk_last.fill_(m - 1)
        window = self.window_for(start + PREFILL_CHUNK - 1)
        entry = cache.graphs.get(("chunk", window)) if self.use_graphs else None
        if entry is None:
            return self._chunk_eager(cache, window)
        entry[0].replay()
        return entry[1]

    def _chunk_eager(self, cache: KVCache, window: int) -> torch.Tensor:
        return self._forward(cache, self.chunk_ids, self.chunk_pos, window,
                             self._mask(self.chunk_pos, window), self.chunk_last)

    def window_for(self, position: int) -> int:
        window = MIN_WINDOW
        while window <= position:
            window *= 2
        return min(window, self.capacity)

    def ready(self, cache: KVCache, position: int) -> bool:
        """Whether a step at ``position`` runs without capturing a graph first."""
        return not self.use_graphs or self.window_for(position) in cache.graphs

    def step(self, cache: KVCache, token: torch.Tensor, position: int) -> torch.Tensor:
        """Logits after feeding ``token`` (a device tensor of one id) at ``position``."""
        window = self.window_for(position)
        self.step_ids.view(-1).copy_(token.view(-1))
        self.step_pos.fill_(position)
        if not self.use_graphs:
            return self._step_eager(cache, window)
        entry = cache.graphs.get(window) or self._capture(cache, window)
        entry[0].replay()
        return entry[1]

    def _step_eager(self, cache: KVCache, window: int) -> torch.Tensor:
        if self.fused:
            return self._forward_fused(cache, self.step_ids, self.step_pos, window)
        return self._forward(cache, self.step_ids, self.step_pos, window,
                             self._mask(self.step_pos, window))

    def _capture(self, cache: KVCache, window: int, chunk: bool = False):
        """Record one step (or one prefill chunk) for ``cache`` and ``window``, after warm-ups.

        Warm-up and capture write at the window's last slots, which hold nothing valid yet; the
        real run then rewrites its own slots.
        """
        with self._capture_lock:
            inputs = (self.chunk_ids, self.chunk_pos, self.chunk_last) if chunk else \
                (self.step_ids, self.step_pos)
            saved = [t.clone() for t in inputs]
            if chunk:
                self.chunk_pos.copy_(self.positions[window - PREFILL_CHUNK:window])
                self.chunk_last.fill_(PREFILL_CHUNK - 1)
            else:
                self.step_pos.fill_(window - 1)
            run = (lambda: self._chunk_eager(cache, window)) if chunk else \
                (lambda: self._step_eager(cache, window))
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    run()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                logits = run()
            for t, old in zip(inputs, saved):
                t.copy_(old)
            cache.graphs[("chunk", window) if chunk else window] = (graph, logits)
            return graph, logits


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' rule: a seen token's logit is divided by the penalty, or multiplied if negative."""
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


SCAN_ROW = 1024  # ordered_cumsum's row: short enough for one thread block's fixed-order scan


def ordered_cumsum(x: torch.Tensor) -> torch.Tensor:
    """``x.cumsum(-1)`` whose additions come in the same order every run.

    CUDA's one-pass scan of a long row (CUB's decoupled look-back) adds a tile's predecessors in
    whatever grouping is ready first: over a 152k vocabulary it gave 28 different results in 30 runs
    on an H200 (bench/determinism_probe.py). Rows of 1,024 are scanned by one block each in a fixed
    order; their totals (≤ 150 of them) are scanned the same way and added back.
    """
    n = x.shape[-1]
    if n <= SCAN_ROW:
        return x.cumsum(-1)
    rows = F.pad(x, (0, -n % SCAN_ROW)).view(*x.shape[:-1], -1, SCAN_ROW).cumsum(-1)
    totals = rows[..., -1]
    before = totals.cumsum(-1) - totals  # what all earlier rows add up to
    return (rows + before[..., None]).flatten(-2)[..., :n]


def noise_seed(seed: int, position: int) -> int:
    """The sampling noise's seed for the token at ``position``: a function of the run's seed and
    the position alone, so a token is drawn the same way whatever ran before it in the process,
    and whether the prompt was encoded whole or from a kept prefix (splitmix64's odd constants)."""
    return (seed * 0x9E3779B97F4A7C15 + (position + 1) * 0xBF58476D1CE4E5B9) % (2**63 - 1)


def choose_token(logits: torch.Tensor, seen: torch.Tensor, settings,
                 generator: torch.Generator | None, position: int = 0) -> torch.Tensor:
    """Next token id (a (1,) device tensor), in transformers' order: penalty, temperature, top-k, top-p.

    Sampling draws exponential noise and takes ``argmax(p / noise)``, which picks token i with
    probability p_i (the "Gumbel-max" trick, as gpt-fast does): unlike ``torch.multinomial`` it never
    waits for the device, and its noise comes from ``noise_seed(seed, position)``. With top-k, top-p
    runs on the k best alone (a sort of k values, not of the vocabulary); where several tokens tie
    with the k-th logit, the first k are kept (transformers keeps every tied one).
    """
    logits = apply_repetition_penalty(logits, seen, settings.repetition_penalty)
    if settings.greedy:
        return logits.argmax(-1)
    logits = logits / settings.temperature
    index = None
    if settings.top_k:  # from here on only the k best count: no sort of the whole vocabulary
        logits, index = torch.topk(logits, min(settings.top_k, logits.shape[-1]))
    if settings.top_p < 1.0:
        ascending, order = (logits.flip(-1), None) if index is not None else \
            torch.sort(logits, descending=False)
        cumulative = ordered_cumsum(ascending.softmax(-1))
        remove = cumulative <= (1 - settings.top_p)
        remove[..., -1:] = False  # always keep the most likely token
        ascending = ascending.masked_fill(remove, float("-inf"))
        logits = ascending.flip(-1) if order is None else \
            logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    probs = logits.softmax(-1)
    generator.manual_seed(noise_seed(settings.seed, position))
    noise = torch.empty_like(probs).exponential_(generator=generator)
    choice = (probs / noise).argmax(-1)
    return choice if index is None else index.gather(-1, choice[..., None]).view(-1)


def decode(decoder: StaticDecoder, cache: KVCache, ids: list[int], start: int, settings,
           stop_ids: set[int], on_token: Callable[[int], bool], mask=None) -> None:
    """Prefill, then decode until ``on_token`` returns False, EOS, max tokens or a full cache.

    ``mask`` (a constraint's ``TorchMask``): the grammar's forbidden tokens are set to -inf before
    each choice; ``on_token`` moves the matcher on, on the CPU while the next step runs.
    ``on_token`` gets each new id as soon as it is known. The next step is launched before the host
    waits for the current id, so detokenizing and streaming overlap the GPU's work; nothing the
    host does with the id feeds back into the device's work, so this changes no token.
    """
    device = decoder.device
    vocab = decoder.model.lm_head.out_features if hasattr(decoder.model.lm_head, "out_features") \
        else decoder.model.config.vocab_size
    seen = torch.zeros(vocab, dtype=torch.bool, device=device)
    if settings.repetition_penalty != 1.0:
        seen[torch.tensor(ids, device=device)] = True
    generator = None if settings.greedy else torch.Generator(device=device)
    host = torch.zeros(1, dtype=torch.long, pin_memory=device.type == "cuda")
    copied = torch.cuda.Event() if device.type == "cuda" else None  # re-recorded every token
    logits = decoder.prefill(cache, ids, start)
    position = len(ids)
    for count in range(1, settings.max_new_tokens + 1):
        if mask is not None:  # out of place: a graph's output buffer is not ours to write
            logits = mask.apply(logits.clone())
        token = choose_token(logits, seen, settings, generator, position)
        host.copy_(token, non_blocking=True)
        if copied is not None:
            copied.record()
        more = count < settings.max_new_tokens and position < decoder.length
        # feed the token before its value reaches the host -- unless that first needs a graph
        # captured, which would hold back a token the user is waiting for
        early = more and decoder.ready(cache, position)
        if early:
            logits = decoder.step(cache, token, position)
        if copied is not None:
            copied.synchronize()
        value = int(host[0])
        go_on = on_token(value) and value not in stop_ids and more
        if go_on and not early:
            logits = decoder.step(cache, token, position)
        if early or go_on:
            cache.tokens.append(value)  # its keys and values are in the cache now
            if settings.repetition_penalty != 1.0:
                # index_fill_ takes True as a kernel argument; ``seen[token] = True`` copies it
                # from pageable host memory, which waits for the step in flight: the GPU then
                # idled while the host launched the next sampling (H100, 7B: -5.3 % with the
                # page's defaults, -13.8 % sampled, against 73 us of sampling kernels a token)
                seen.index_fill_(0, token.view(-1), True)
        position += 1
        if not go_on:
            return
