"""Telling OpenAI-compatible servers apart, reading their limits, and testing their prefill.

``detect_server`` asks a few cheap, documented questions once per endpoint (the host name for
hosted APIs; ``/v1/models`` entries' ``owned_by``/``max_model_len`` for vLLM and SGLang;
llama-server's ``/props``; LM Studio's REST API ``/api/v0/models``, whose entries carry
``compatibility_type`` and ``max_context_length``; Ollama's ``/api/version``; TGI's ``/info``)
and returns a ``ServerInfo``. ``closes_turn`` checks, with three one-token calls, whether a server continues
a final assistant message or closes that turn and starts a new one (llama-cpp-python's chat
endpoint does): with a continued prefill the prompt grows by exactly the prefill's tokens,
with a closed turn by the end-of-turn and new-header tokens as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ServerInfo", "HOSTED", "root_url", "detect_server", "closes_turn"]

#: Hosted APIs known by their host name (no request needed).
HOSTED = {"api.openai.com": "openai", "api.deepseek.com": "deepseek", "api.mistral.ai": "mistral"}

#: Extra prompt tokens of a closed turn beyond the prefill's own (end of turn + a new header).
CLOSED_TURN_MIN_EXTRA = 2

_PROBE_USER = "Answer with one word: what colour is the sky?"
_PROBE_PREFILL = "The sky is blue and the grass is green"


@dataclass
class ServerInfo:
    """What one endpoint said about itself."""

    kind: str
    #: Model ids it serves, in its order, with their context window when it says.
    models: dict[str, int | None] = field(default_factory=dict)
    #: The server-wide context size (llama-server ``n_ctx``, TGI ``max_total_tokens``).
    context_window: int | None = None

    def context_for(self, model: str) -> int | None:
        return self.models.get(model) or self.context_window

    @property
    def default_model(self) -> str | None:
        return next(iter(self.models), None)


def root_url(base_url: str) -> str:
    """The server's root: the base URL without a trailing ``/v1`` (and without credentials)."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _get_json(client: Any, url: str) -> Any:
    """GET ``url`` through the SDK client (no retries); None on any failure."""
    try:
        return client.get(url, cast_to=object)
    except Exception:  # a probe that fails only means "not this kind of server"
        return None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _models(listing: Any) -> tuple[dict[str, int | None], set[str]]:
    entries = listing.get("data") if isinstance(listing, dict) else None
    models: dict[str, int | None] = {}
    owners: set[str] = set()
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            models[entry["id"]] = _positive_int(entry.get("max_model_len"))
            owners.add(str(entry.get("owned_by", "")))
    return models, owners


def _lmstudio_models(listing: Any) -> dict[str, int | None] | None:
    """LM Studio's ``/api/v0/models`` (documented shape): model id -> ``max_context_length``.

    None when the listing is not LM Studio's: every entry must have ``compatibility_type``
    and ``max_context_length``. Embedding models are left out.
    """
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    models: dict[str, int | None] = {}
    for entry in entries:
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)):
            return None
        if "compatibility_type" not in entry or "max_context_length" not in entry:
            return None
        if entry.get("type") != "embeddings":
            models[entry["id"]] = _positive_int(entry.get("max_context_length"))
    return models


def detect_server(client: Any, base_url: str) -> ServerInfo:
    """Ask the endpoint what it is (see the module docstring); "generic" when nothing fits."""
    hosted = HOSTED.get(urlsplit(base_url).hostname or "")
    if hosted:
        return ServerInfo(hosted)
    root = root_url(base_url)
    models, owners = _models(_get_json(client, "models"))
    for kind in ("vllm", "sglang"):
        if kind in owners:
            return ServerInfo(kind, models)
    props = _get_json(client, root + "/props")
    if isinstance(props, dict) and "default_generation_settings" in props:
        settings = props["default_generation_settings"]
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        return ServerInfo("llama-server", models, _positive_int(n_ctx or props.get("n_ctx")))
    lmstudio = _lmstudio_models(_get_json(client, root + "/api/v0/models"))
    if lmstudio is not None:
        return ServerInfo("lmstudio", {**models, **lmstudio})
    version = _get_json(client, root + "/api/version")
    if isinstance(version, dict) and "version" in version:
        return ServerInfo("ollama", models)
    info = _get_json(client, root + "/info")
    if isinstance(info, dict) and "model_id" in info and "max_total_tokens" in info:
        return ServerInfo("tgi", models, _positive_int(info.get("max_total_tokens")))
    return ServerInfo("generic", models)


def _prompt_tokens(client: Any, model: str, messages: list[dict[str, Any]]) -> int | None:
    response = client.chat.completions.create(model=model, messages=messages, max_tokens=1, temperature=0)
    usage = getattr(response, "usage", None)
    return _positive_int(getattr(usage, "prompt_tokens", None))


def closes_turn(client: Any, model: str) -> bool | None:
    """True if a final assistant message is closed as a past turn; None when usage is missing.

    Three one-token calls: the question alone (P0), with the prefill S (P1), with S twice
    (P2). S's own tokens are P2 - P1; a continued prefill gives P1 - P0 == that (within one
    token of re-tokenisation), a closed turn adds its end-of-turn and next-header tokens.
    Errors from the calls propagate (the caller maps them).
    """
    user = [{"role": "user", "content": _PROBE_USER}]
    fresh = _prompt_tokens(client, model, user)
    once = _prompt_tokens(client, model, [*user, {"role": "assistant", "content": _PROBE_PREFILL}])
    twice_text = f"{_PROBE_PREFILL} {_PROBE_PREFILL}"
    twice = _prompt_tokens(client, model, [*user, {"role": "assistant", "content": twice_text}])
    if fresh is None or once is None or twice is None:
        return None
    prefill_tokens = twice - once
    return (once - fresh) - prefill_tokens >= CLOSED_TURN_MIN_EXTRA
