"""Constrained decoding in process: which tokens may come next under a grammar, per step.

One matcher for both in-process engines, llguidance (MIT): it reads llama.cpp's GBNF as written,
builds its tokenizer from llama.cpp's vocabulary or a Hugging Face tokenizer, and fills a bitmask
of the allowed tokens on the CPU in about 0.1 ms a token (a 49,152-token vocabulary), which the
static decoder computes while the GPU runs the next step. Why not the alternatives:

* llama.cpp's own grammar sampler (``LlamaGrammar``, ``generate(grammar=)``) checks every token of
  the vocabulary at every step: 20.9-23.2 ms a token against 11.9-12.2 without, on the embedded
  SmolLM2 and this project's 2-vCPU machine (docs/benchmarks.md); llguidance's mask costs 0.65 ms
  there, applied to the same logits in llama.cpp's sampler chain.
* xgrammar (Apache-2.0) is as fast but brings torch into the llama.cpp-only install, and
  outlines-core (Apache-2.0) builds its index per regular expression over the whole vocabulary,
  slow to compile for the grammar's bounded repetitions.

The mask is a function of the tokens written so far alone, so a constrained run writes the same
tokens for the same input, with or without a kept prefix, as an unconstrained one does.
"""

from __future__ import annotations

import json
import re
import threading

from ..core.constraints import Constraint, ConstraintError


def compile_grammar(constraint: Constraint) -> str:
    """llguidance's grammar for the constraint's GBNF; ConstraintError naming what is wrong."""
    import llguidance

    try:
        grammar = llguidance.grammar_from("gbnf", constraint.gbnf)
    except (ValueError, RuntimeError) as error:
        raise ConstraintError(f"the grammar of {constraint.name} is not valid GBNF: {error}") from None
    message = llguidance.LLMatcher.validate_grammar(grammar)
    if message and not message.startswith("WARNING"):
        raise ConstraintError(f"the grammar of {constraint.name} is not valid: {message}")
    return grammar


class HFTokens:
    """A Hugging Face tokenizer as llguidance reads one: every token's bytes, its special tokens.

    llguidance's own ``from_tokenizer`` reads the tokenizer's decoder to learn how tokens map to
    bytes, and misreads the decoder transformers builds from a GGUF (a sequence of ByteFallback,
    Fuse, Replace and ByteLevel): it took SmolLM2's "Ġ" (a space) for the two bytes of "Ġ". Here the
    bytes come from the vocabulary itself: byte-level pieces through GPT-2's alphabet, SentencePiece
    pieces with "▁" as a space and "<0xAB>" as a byte, added tokens as written.
    """

    def __init__(self, tokenizer, n_vocab: int, eos_token_id: int):
        decoder = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
        kinds = {d.get("type") for d in decoder.get("decoders", [decoder])}
        byte_level = "ByteLevel" in kinds
        from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte alphabet

        alphabet = {char: byte for byte, char in bytes_to_unicode().items()}
        special = set(tokenizer.all_special_ids)
        added = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        self.special_token_ids = sorted((special | added) & set(range(n_vocab)))
        self.eos_token_id, self.bos_token_id = eos_token_id, tokenizer.bos_token_id
        self.tokens: list[bytes] = []
        for i in range(n_vocab):
            piece = tokenizer.convert_ids_to_tokens(i) if i < len(tokenizer) else None
            if piece is None:  # the output layer is wider than the vocabulary: never written
                self.tokens.append(b"")
            elif i in special or i in added:  # llguidance marks special tokens with a 0xFF byte
                self.tokens.append(b"\xff" + piece.encode())
            elif byte_level and all(c in alphabet for c in piece):
                self.tokens.append(bytes(alphabet[c] for c in piece))
            elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
                self.tokens.append(bytes([int(piece[3:5], 16)]))
            else:
                self.tokens.append(piece.replace("\u2581", " ").encode())
        self._encode = tokenizer.encode

    def __call__(self, text: str) -> list[int]:
        return self._encode(text, add_special_tokens=False)


def hf_lltokenizer(tokenizer, n_vocab: int, eos_token_id: int):
    import llguidance
    from llguidance._tokenizer import TokenizerWrapper

    return llguidance.LLTokenizer(TokenizerWrapper(HFTokens(tokenizer, n_vocab, eos_token_id)),
                                  n_vocab=n_vocab, eos_token=eos_token_id)


class Grammars:
    """The constraints one backend has compiled, and the tokenizer they were compiled for.

    The tokenizer costs ~0.2 s to build (49,152 tokens), so it is built once, on first use.
    """

    def __init__(self, make_tokenizer):
        self._make_tokenizer = make_tokenizer
        self._tokenizer = None
        self._compiled: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def tokenizer(self):
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._make_tokenizer()
            return self._tokenizer

    def support(self, constraint: Constraint) -> str:
        """"" when ``constraint`` compiles for this model's tokenizer (now, at start: a bad grammar
        raises ConstraintError and stops the start); why not when llguidance cannot read the
        tokenizer (an EOS id outside the vocabulary, say): the model still serves, unconstrained."""
        try:
            self.tokenizer
        except (ValueError, RuntimeError, KeyError, TypeError) as error:
            return f"llguidance cannot read this model's tokenizer ({error})"
        self.matcher(constraint)
        return ""

    def matcher(self, constraint: Constraint) -> "TokenMask":
        grammar = self._compiled.get(constraint.gbnf)
        if grammar is None:
            grammar = self._compiled[constraint.gbnf] = compile_grammar(constraint)
        return TokenMask(self.tokenizer, grammar, constraint)


class TokenMask:
    """One run's matcher: ``allowed()`` is the bitmask of the tokens that may come next (bit i of
    int32 word i // 32 for token i), ``advance(token)`` moves past a written token."""

    def __init__(self, tokenizer, grammar: str, constraint: Constraint):
        import llguidance
        import numpy as np

        self.constraint = constraint
        self._matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=1)
        if self._matcher.is_error():
            raise ConstraintError(f"{constraint.name}: {self._matcher.get_error()}")
        self.words = (tokenizer.vocab_size + 31) // 32
        self.bitmask = np.zeros(self.words, dtype=np.int32)  # refilled in place after each token
        self._fill()

    def _fill(self) -> None:
        # llguidance writes the mask straight into the array's memory (no copy per token)
        self._matcher.unsafe_compute_mask_ptr(self.bitmask.ctypes.data, self.bitmask.nbytes)

    def advance(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            raise ConstraintError(f"token {token} does not fit {self.constraint.name}: "
                                  f"{self._matcher.get_error()}")
        self._fill()  # once the text is whole: the end-of-text token alone

    @property
    def complete(self) -> bool:
        """The text so far is a whole match (only the end of text may follow)."""
        return self._matcher.is_accepting()

    def allowed_numpy(self, vocab: int):
        """The mask as numpy booleans over a vocabulary of ``vocab`` logits (llama.cpp)."""
        import numpy as np

        bits = np.unpackbits(self.bitmask.view(np.uint8), bitorder="little")
        allowed = np.zeros(vocab, dtype=bool)
        n = min(vocab, bits.shape[0])
        allowed[:n] = bits[:n]
        return allowed


class TorchMask:
    """Applies a ``TokenMask`` to logits on the logits' device: the 32-bit words are copied (6 KB
    for 49,152 tokens, 19 KB for Qwen's 152,064) and unpacked there, no per-token compile."""

    def __init__(self, mask: TokenMask, vocab: int, device):
        import torch

        self.mask = mask
        self.vocab = vocab
        pin = device.type == "cuda"
        self._host = torch.from_numpy(mask.bitmask)  # shares memory with the matcher's array
        self._staging = torch.empty(mask.words, dtype=torch.int32, pin_memory=pin)
        self._device_words = torch.empty(mask.words, dtype=torch.int32, device=device)
        self._bits = torch.tensor([1 << i for i in range(31)] + [-(1 << 31)], dtype=torch.int32,
                                  device=device)

    def apply(self, logits):
        """``logits`` (…, vocab) with every token the grammar forbids set to -inf, in place."""
        self._staging.copy_(self._host)
        self._device_words.copy_(self._staging, non_blocking=True)
        allowed = (self._device_words[:, None] & self._bits) != 0  # (words, 32)
        allowed = allowed.reshape(-1)
        width = logits.shape[-1]
        if allowed.shape[0] < width:  # logits wider than the tokenizer's vocabulary (padding)
            import torch

            allowed = torch.cat([allowed, allowed.new_zeros(width - allowed.shape[0])])
        logits.masked_fill_(~allowed[:width], float("-inf"))
        return logits
