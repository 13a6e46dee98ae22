"""A remote engine over HTTP: vLLM, SGLang, llama.cpp's llama-server, llama-cpp-python's server.

The rendered prompt goes verbatim to the raw completions endpoint (``/v1/completions`` with
``prompt``): the special prompt must carry the user's edited reasoning character for character, and
chat endpoints re-render messages through the engine's own template (llama-server refuses an
assistant prefill with thinking templates, vLLM's ``continue_final_message`` has an open bug with
thinking, TGI strips a continued message's trailing whitespace).

Why httpx rather than the ``openai`` package: httpx already comes with gradio (no new dependency);
its streaming gives the raw server-sent events, including fields the OpenAI schema lacks (llama.cpp's
``timings``, SGLang's and vLLM's extras), with separate connect and read timeouts (a stall is a read
timeout); and closing the response closes the connection, which is how a Stop reaches the engine.
The ``openai`` client retries failed requests twice by default, which would silently repeat a
generation, and needs ``extra_body`` for every sampler the app uses beyond temperature and top-p.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import urlsplit

from ..core.constraints import Constraint
from ..core.prompts import ChatTemplate
from ..core.settings import AppSettings, GenerationSettings
from .local_tokenizer import LocalTokenizer, load_local_tokenizer
from .protocol import Chunk, EngineError, LoadError
from .source import Progress

# Seconds to open a connection: a loopback or data-centre engine answers in milliseconds; more than
# this means it is down or the URL is wrong, and the start-up check should say so quickly.
CONNECT_TIMEOUT_S = 10.0
# Characters of an engine's error body shown to the user: enough for vLLM's validation messages
# (~200 characters), short enough for a toast.
ERROR_BODY_CHARS = 300
# Bytes per token when the engine cannot count: UTF-8 English runs ~4 bytes a token and Japanese
# ~3 (3 bytes a character, about a character a token); 3 errs towards refusing early.
BYTES_PER_TOKEN_ESTIMATE = 3


@dataclass(frozen=True)
class Dialect:
    """How one engine names its samplers and counts tokens."""

    name: str
    top_k: str | None = None  # request field, or None when the engine has no top-k
    top_k_off: int = 0  # the value meaning "no top-k" (vLLM and SGLang: -1)
    penalty: str | None = None  # repetition penalty's request field
    min_p: bool = False  # llama.cpp's servers default min_p to 0.05; the app samples with 0
    tokenize: tuple[str, ...] = ()  # tokenize endpoints to try, in order
    tokenize_body: Callable[[str, str], dict] = lambda prompt, model: {}
    # the request fields that carry a GBNF grammar to /v1/completions, or None: no such field
    grammar: Callable[[str], dict] | None = None


def _vllm_body(prompt: str, model: str) -> dict:
    return {"model": model, "prompt": prompt, "add_special_tokens": True}


# Each engine's documented field for a grammar on /v1/completions: vLLM's ``structured_outputs``
# (its ``guided_grammar`` was removed in 0.12.0, and vLLM answers 200 to a request that still sends
# it, ignoring it), SGLang's ``ebnf`` (its default xgrammar backend reads llama.cpp's GBNF),
# llama.cpp's servers' ``grammar``. ``format_support`` checks that the engine really applies it.
DIALECTS: dict[str, Dialect] = {
    "vllm": Dialect("vLLM", "top_k", -1, "repetition_penalty", True, ("/tokenize",), _vllm_body,
                    lambda gbnf: {"structured_outputs": {"grammar": gbnf}}),
    "sglang": Dialect("SGLang", "top_k", -1, "repetition_penalty", True, ("/tokenize",), _vllm_body,
                      lambda gbnf: {"ebnf": gbnf}),
    "llama-server": Dialect("llama.cpp llama-server", "top_k", 0, "repeat_penalty", True,
                            ("/tokenize",),
                            lambda prompt, model: {"content": prompt, "add_special": True,
                                                   "parse_special": True},
                            lambda gbnf: {"grammar": gbnf}),
    "llama-cpp-python": Dialect("llama-cpp-python server", "top_k", 0, "repeat_penalty", True,
                                ("/extras/tokenize", "/tokenize"),
                                lambda prompt, model: {"input": prompt, "model": model},
                                lambda gbnf: {"grammar": gbnf}),
    # Any other OpenAI-compatible server: the OpenAI schema has temperature, top_p and seed only.
    "openai": Dialect("OpenAI-compatible server"),
}


def base_url(endpoint: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all name the same engine."""
    url = endpoint.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LoadError(f"--endpoint {endpoint!r} is not an http(s) URL like http://127.0.0.1:8000")
    return url


def _error_text(response) -> str:
    """The engine's own words from an error body (OpenAI, FastAPI and llama.cpp shapes), shortened."""
    try:
        body = response.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the status alone still says something
        body = ""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        text = error.get("message") or error.get("detail") if isinstance(error, dict) else error
        body = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    except (ValueError, AttributeError):
        pass
    body = " ".join(body.split())
    return body[:ERROR_BODY_CHARS] + ("…" if len(body) > ERROR_BODY_CHARS else "")


# The format probe: a prompt whose likely continuation (", 4, 5") shares nothing with a format's
# forced start, and enough tokens to tell (a forced "PARAGRAPH: " is 3-5 tokens in common vocabularies).
PROBE_PROMPT = "1, 2, 3"
PROBE_TOKENS = 4

# A batching engine computes a request among others', in batch shapes that change from run to run:
# nothing here can promise the same tokens for the same input (docs/exactness.md), and the stats say so.
NO_REPEAT_PROMISE = "not guaranteed to repeat: a served engine batches requests together"


class OpenAIBackend:
    """One served model of one engine; safe for many runs at once (``parallel`` of them)."""

    def __init__(self, client, url: str, dialect: Dialect, served: str, context_length: int,
                 chat: ChatTemplate, *, version: str = "", tokenize: str = "",
                 timeout: float = 120.0, parallel: int = 8):
        self.client, self.url, self.dialect, self.served = client, url, dialect, served
        self.name = f"{dialect.name} {version}".strip()
        self.model_name = served
        self.context_length = context_length
        self.chat = chat
        self.timeout = timeout
        self.parallel = parallel  # the Engine lets this many runs stream at once
        self._tokenize = tokenize  # "" = no tokenize endpoint: the local tokenizer, or estimates
        self.local_tokenizer: LocalTokenizer | None = None  # --tokenizer, where the engine can't count
        self._local = threading.local()  # per run: each run streams on its own thread

    # -- what the stats line reports -------------------------------------------------------------

    @property
    def last_reused_tokens(self) -> int | None:
        """Prompt tokens the engine served from its prefix cache on this thread's last run."""
        return getattr(self._local, "reused", None)

    def ignored(self, settings: GenerationSettings) -> tuple[str, ...]:
        """Settings this engine has no field for, at values that would change the output."""
        out = []
        if self.dialect.top_k is None and settings.top_k:
            out.append("top_k")
        if self.dialect.penalty is None and settings.repetition_penalty != 1.0:
            out.append("repetition_penalty")
        return tuple(out)

    def notes(self, settings: GenerationSettings) -> tuple[str, ...]:
        """Short notes for the stats line: ignored settings, estimated counts."""
        notes = []
        ignored = self.ignored(settings)
        if ignored:
            notes.append(f"{self.dialect.name} ignores {', '.join(ignored)}")
        if not self._tokenize:
            notes.append(self.counted_by)
        notes.append(NO_REPEAT_PROMISE)
        return tuple(notes)

    # -- counting --------------------------------------------------------------------------------

    @property
    def counted_by(self) -> str:
        """Who counts prompt tokens, for the loading line and the stats."""
        if self._tokenize:
            return f"prompt tokens counted by the engine ({self._tokenize})"
        if self.local_tokenizer:
            return (f"prompt tokens counted by the local tokenizer {self.local_tokenizer.name} "
                    f"(the engine has no tokenize endpoint)")
        return "prompt tokens estimated"

    def count_tokens(self, prompt: str) -> int:
        if not self._tokenize:
            if self.local_tokenizer:
                return self.local_tokenizer.count(prompt)
            return math.ceil(len(prompt.encode("utf-8")) / BYTES_PER_TOKEN_ESTIMATE)
        data = self._post_json(self._tokenize, self.dialect.tokenize_body(prompt, self.served))
        return int(data["count"]) if "count" in data else len(data["tokens"])

    def _post_json(self, path: str, body: dict) -> dict:
        return _call(self.client, "POST", self.url, path, self._where(), body)

    def _where(self) -> str:
        return f"the engine ({self.dialect.name} at {self.url})"

    # -- generating ------------------------------------------------------------------------------

    # -- formats ---------------------------------------------------------------------------------

    def format_support(self, constraint: Constraint) -> str:
        """"" when this engine applies the constraint's grammar, else why not. Asked once, at start,
        with a short greedy probe: an engine that takes the field must start its text with the
        constraint's forced prefix; one that ignores it (vLLM answers 200 to fields it dropped)
        writes something else."""
        if self.dialect.grammar is None:
            return (f"{self.dialect.name} has no documented grammar field for /v1/completions "
                    f"(the text is parsed as the model writes it)")
        body = {"model": self.served, "prompt": PROBE_PROMPT, "max_tokens": PROBE_TOKENS,
                "temperature": 0.0, "stream": False, **self.dialect.grammar(constraint.gbnf)}
        try:
            data = self._post_json("/v1/completions", body)
            text = ((data.get("choices") or [{}])[0].get("text") or "")
        except (EngineError, AttributeError, IndexError) as error:
            return f"{self.name} refused the grammar: {error}"
        forced = constraint.forced_prefix
        if text and (text.startswith(forced) or forced.startswith(text)):
            return ""
        return (f"{self.name} answered a probe without applying the grammar (it wrote {text!r}, "
                f"not the start of {forced!r})")

    def request_body(self, prompt: str, settings: GenerationSettings,
                     constraint: Constraint | None = None) -> dict:
        body = {"model": self.served, "prompt": prompt, "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature, "top_p": settings.top_p,
                "seed": settings.seed, "stream": True}
        d = self.dialect
        if constraint is not None and d.grammar is not None:
            body.update(d.grammar(constraint.gbnf))
        if d.top_k:
            body[d.top_k] = settings.top_k or d.top_k_off
        if d.penalty:
            body[d.penalty] = settings.repetition_penalty
        if d.min_p:
            body["min_p"] = 0.0
        if d.name in ("vLLM", "SGLang"):
            body["stream_options"] = {"include_usage": True}  # usage and cached tokens at the end
        return body

    def stream(self, prompt: str, settings: GenerationSettings, cancel: threading.Event,
               session: str = "", constraint: Constraint | None = None) -> Iterator[Chunk]:
        """Stream on the caller's thread; leaving early closes the connection, which aborts the
        request in vLLM, SGLang, llama-server and llama-cpp-python's server."""
        import httpx

        self._local.reused = None
        count = 0
        try:
            with self.client.stream("POST", self.url + "/v1/completions",
                                    json=self.request_body(prompt, settings, constraint)) as response:
                if response.status_code >= 400:
                    raise EngineError(self._status_message(response))
                for event in self._events(response):
                    if cancel.is_set():
                        return
                    text, tokens, finished = self._read_event(event)
                    count = max(count + tokens, 0)
                    if text or tokens:
                        yield Chunk(text, count)
                    if finished:
                        return
            raise EngineError(f"{self._where()} ended the stream after {count} tokens without "
                              f"saying why; the partial text is kept")
        except httpx.TimeoutException:
            raise EngineError(f"{self._where()} sent nothing for {self.timeout:.0f} s after "
                              f"{count} tokens: it stalled (--request-timeout). The partial text "
                              f"is kept.") from None
        except httpx.HTTPError as error:
            raise EngineError(f"the connection to {self._where()} broke after {count} tokens "
                              f"({type(error).__name__}). The partial text is kept; the next run "
                              f"reconnects.") from None

    @staticmethod
    def _events(response) -> Iterator[dict | None]:
        """Server-sent events as JSON; None for ``[DONE]``."""
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                yield None
                return
            yield json.loads(data)

    def _read_event(self, event: dict | None) -> tuple[str, int, bool]:
        """(text, new tokens in it, finished) for one event."""
        if event is None:
            return "", 0, True
        if "error" in event:
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise EngineError(f"{self._where()} reported an error mid-stream: {message}")
        usage = event.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        if details.get("cached_tokens") is not None:
            self._local.reused = int(details["cached_tokens"])
        timings = event.get("timings") or {}
        if "cache_n" in timings:  # llama-server
            self._local.reused = int(timings["cache_n"])
        choices = event.get("choices") or []
        if not choices:
            return "", 0, False  # vLLM/SGLang's usage-only last event
        choice = choices[0]
        text = choice.get("text") or ""
        finished = choice.get("finish_reason") is not None
        # One event is one token, except the closing event of llama-cpp-python (empty text).
        tokens = 1 if (text or not finished) else 0
        return text, tokens, finished

    def _status_message(self, response) -> str:
        text = _error_text(response)
        message = f"{self._where()} answered {response.status_code}: {text}"
        if response.status_code == 404 and "model" in text.lower():
            try:
                message += f" — it serves: {', '.join(served_models(self.client, self.url))}"
            except EngineError:
                pass
        return message


# -- connecting at start-up ----------------------------------------------------------------------

def served_models(client, url: str) -> list[str]:
    return [m["id"] for m in _get(client, url, "/v1/models").get("data", [])]


def _call(client, method: str, url: str, path: str, where: str, body: dict | None = None) -> dict:
    """One JSON request; every failure becomes an EngineError naming the engine and the cause."""
    import httpx

    try:
        response = client.request(method, url + path, json=body)
    except httpx.TimeoutException:
        raise EngineError(f"{where} did not answer {method} {path} in time: it stalled "
                          f"(--request-timeout)") from None
    except httpx.HTTPError as error:
        raise EngineError(f"cannot reach {where} ({type(error).__name__}: {error}); is it "
                          f"running, and is --endpoint right?") from None
    if response.status_code >= 400:
        raise EngineError(f"{where} answered {method} {path} with {response.status_code}: "
                          f"{_error_text(response)}")
    return response.json()


def _get(client, url: str, path: str) -> dict:
    return _call(client, "GET", url, path, f"the engine at {url}")


def _probe(client, url: str, path: str) -> dict | None:
    """GET a JSON object, or None when the engine has no such endpoint."""
    try:
        data = _get(client, url, path)
    except (EngineError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_ollama(client, url: str) -> bool:
    import httpx

    try:
        response = client.get(url + "/")
    except httpx.HTTPError:
        return False
    return "ollama is running" in response.text.lower()


def detect(client, url: str, models: list[dict]) -> tuple[str, str, dict]:
    """(dialect key, version, the engine's /props or similar) from what the engine serves."""
    owners = {m.get("owned_by") for m in models}
    props = _probe(client, url, "/props") if "llamacpp" in owners or not owners & {
        "vllm", "sglang", "me"} else None
    if props and "default_generation_settings" in props:
        return "llama-server", str(props.get("build_info", "")), props
    if "sglang" in owners or (_probe(client, url, "/get_model_info") or {}).get("model_path"):
        info = _probe(client, url, "/get_server_info") or {}
        return "sglang", str(info.get("version", "")), info
    if "vllm" in owners:
        return "vllm", str((_probe(client, url, "/version") or {}).get("version", "")), {}
    if "me" in owners:  # llama-cpp-python names itself the owner of its models
        return "llama-cpp-python", "", {}
    return "openai", "", {}


def _tokenize_path(backend: OpenAIBackend) -> str:
    """The first tokenize endpoint that answers a probe, or "" (counts become estimates)."""
    for path in backend.dialect.tokenize:
        backend._tokenize = path
        try:
            if backend.count_tokens("Hello") > 0:
                return path
        except (EngineError, KeyError, TypeError, ValueError):
            pass
    backend._tokenize = ""
    return ""


def _choose_counting(backend: OpenAIBackend, tokenizer: str, progress: Progress) -> str:
    """The engine's tokenize endpoint, else ``--tokenizer``, else estimates; returns a note for the
    loading line when ``--tokenizer`` was given but not needed."""
    if _tokenize_path(backend):
        return f"; --tokenizer {tokenizer} not used" if tokenizer else ""
    if tokenizer:
        progress(f"{backend.name} has no tokenize endpoint; loading the tokenizer {tokenizer}", 0.7)
        backend.local_tokenizer = load_local_tokenizer(tokenizer)
    return ""


def connect(settings: AppSettings, progress: Progress) -> OpenAIBackend:
    """Check the engine at start: reachable, not Ollama, serving the named model; learn its context."""
    import httpx

    url = base_url(settings.endpoint)
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    client = httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(settings.request_timeout, connect=CONNECT_TIMEOUT_S),
        # One connection per run streaming at once, plus tokenize calls of runs about to start.
        limits=httpx.Limits(max_connections=2 * settings.parallel,
                            max_keepalive_connections=settings.parallel))
    try:
        progress(f"connecting to the engine at {url}", 0.1)
        if _is_ollama(client, url):
            raise LoadError(
                f"{url} is Ollama, whose /v1/completions wraps the prompt in the model's chat "
                "template, so an edited reasoning would not reach the model as written. Serve the "
                "model with llama.cpp's llama-server, vLLM or SGLang instead.")
        data = _get(client, url, "/v1/models").get("data", [])
        ids = [m.get("id") for m in data]
        if not ids:
            raise LoadError(f"the engine at {url} serves no model (/v1/models is empty)")
        served = settings.served_model or (ids[0] if len(ids) == 1 else "")
        if served not in ids:
            wanted = (f"--served-model {settings.served_model!r} is not served" if served
                      else "it serves several models; choose one with --served-model")
            raise LoadError(f"the engine at {url}: {wanted}. Served: {', '.join(map(str, ids))}")
        key, version, props = detect(client, url, data)
        dialect = DIALECTS[key]
        card = next(m for m in data if m.get("id") == served)
        n_ctx = (card.get("max_model_len")
                 or (props.get("default_generation_settings") or {}).get("n_ctx"))
        context = int(n_ctx) if n_ctx else settings.context_length
        template = props.get("chat_template") if key == "llama-server" else None
        chat = ChatTemplate(template, props.get("bos_token", "") if template else "",
                            props.get("eos_token", "") if template else "")
        backend = OpenAIBackend(client, url, dialect, served, context, chat, version=version,
                                timeout=settings.request_timeout, parallel=settings.parallel)
        progress(f"{backend.name} serves {served}; checking its tokenizer", 0.6)
        unused = _choose_counting(backend, settings.tokenizer, progress)
        progress(f"{backend.name}: context {context:,} tokens "
                 f"({'reported by the engine' if n_ctx else '--context-length'}), "
                 f"{backend.counted_by}{unused}", 0.9)
        return backend
    except EngineError as error:
        client.close()
        raise LoadError(str(error)) from None
    except BaseException:
        client.close()
        raise
