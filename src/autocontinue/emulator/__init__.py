"""A local emulator of the Anthropic Messages API, for tests, benchmarks and trying things out.

It serves ``POST /v1/messages`` (streaming and not) and ``POST /v1/messages/count_tokens``
closely enough that the official ``anthropic`` SDK cannot tell it from the real service: the
same JSON shapes, server-sent event order and framing, ``request-id`` headers, usage fields,
validation rules with the real error texts and statuses, prompt caching and rate limits. Its
"model" writes a fixed answer per prompt, so a client that continues an answer over several
calls can be checked word for word at every seam.

Run it::

    autocontinue emulate --port 8089 --length 5000 --quirks echo:0.5,preamble:1
    python -m autocontinue.emulator --port 8089          # the same, without the CLI group

then point a client at it (``ANTHROPIC_BASE_URL=http://127.0.0.1:8089``, any key). From
Python::

    from autocontinue.emulator import run_emulator
    with run_emulator(seed=0, length=2000, quirks="echo:0.5") as base_url:
        client = anthropic.Anthropic(base_url=base_url, api_key="test")

Where things are: ``sources.py`` (the fixed answers), ``tokenizer.py`` (token counts),
``continuation.py`` (where a continuation resumes, max_tokens and stop sequences),
``quirks.py`` (echo, preamble, drop-space, early-stop, restart, restart-section), ``faults.py`` (529, 429, 500, dropped
connections, in-stream errors), ``ratelimit.py``, ``cache.py`` (prompt caching),
``billing.py`` (``/emulator/stats``, the billing rule), ``request.py`` (the API's rules and
error texts), ``app.py`` (routes and wire format), ``guard.py`` (body size limits and the API
key on every endpoint), ``command.py`` (the ``emulate`` command).

It is a test tool, not a server to expose: bound to anything but a loopback address it says so
on stderr.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from ..catalogue import ModelSpec, parse_model_spec
from ..errors import ConfigurationError
from .app import Emulator, EmulatorConfig, build_app
from .cache import ManualClock, SystemClock
from .faults import parse_faults
from .guard import Guard
from .openai_compat import PERSONAS
from .quirks import QUIRKS_EXAMPLE, parse_quirks
from .sources import parse_source

__all__ = ["run_emulator", "build_config", "make_server", "EmulatorConfig", "ManualClock", "SystemClock"]


def _bad(message: str, hint: str) -> ConfigurationError:
    return ConfigurationError(message, hint=hint)


def build_config(
    *,
    seed: int = 0,
    length: int = 2000,
    source: str = "numbered",
    quirks: str | Mapping[str, float] | None = "",
    faults: str | Mapping[str, Any] | None = "",
    decode_rate: float | None = None,
    rpm: int | None = None,
    otpm: int | None = None,
    model_specs: tuple[str | ModelSpec, ...] | list = (),
    api_key: str | None = None,
    clock: Any = None,
    openai_models: tuple[str, ...] = ("emulated",),
    openai_persona: str = "openai",
) -> EmulatorConfig:
    """Check the options; raises ConfigurationError (one line, with a hint) on a bad value."""
    if not isinstance(length, int) or length < 1:
        raise _bad(f"bad length {length!r}", "give the answer length in tokens, at least 1")
    if not openai_models or not all(isinstance(m, str) and m for m in openai_models):
        raise _bad(f"bad openai_models {openai_models!r}", "name at least one model id, e.g. ('emulated',)")
    if openai_persona not in PERSONAS:
        raise _bad(f"bad openai_persona {openai_persona!r}", "use one of: " + ", ".join(PERSONAS))
    try:
        source = parse_source(source)
    except ValueError as exc:
        raise _bad(f"bad source: {exc}", "use numbered, corpus:PATH (a UTF-8 text file) or local") from None
    try:
        quirk_map = parse_quirks(quirks)
    except ValueError as exc:
        raise _bad(f"bad quirks: {exc}", f"write them as {QUIRKS_EXAMPLE}") from None
    try:
        fault_plan = parse_faults(faults)
    except ValueError as exc:
        raise _bad(
            f"bad faults: {exc}",
            "write them as 529:0.1,429:0.05,500:0.02,drop:0.05,stream-error:0.02 or 529@1,drop@3",
        ) from None
    for name, value in (("decode rate", decode_rate), ("rpm", rpm), ("otpm", otpm)):
        if value is not None and not value > 0:
            raise _bad(
                f"bad {name} {value!r}", f"the {name} must be a positive number (leave it out for no limit)"
            )
    models: dict[str, ModelSpec] = {}
    for item in model_specs:
        spec = item if isinstance(item, ModelSpec) else parse_model_spec(item)
        for name in spec.names():
            models[name] = spec
    return EmulatorConfig(
        seed=int(seed),
        length=length,
        source=source,
        quirks=quirk_map,
        faults=fault_plan,
        decode_rate=decode_rate,
        rpm=rpm,
        otpm=otpm,
        models=models,
        api_key=api_key,
        clock=clock or SystemClock(),
        openai_models=tuple(openai_models),
        openai_persona=openai_persona,
    )


def make_server(config: EmulatorConfig, sock: socket.socket, *, on_started=None, log_level: str = "warning"):
    """A uvicorn server for ``config`` on the bound socket ``sock``; calls ``on_started()``."""
    import uvicorn

    app = Guard(build_app(Emulator(config)), api_key=config.api_key)

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if on_started is not None and not self.should_exit:
                on_started()

    uv_config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        ws="none",
    )
    return _Server(uv_config)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def is_loopback(sock: socket.socket) -> bool:
    """Whether the bound address is reachable from this machine only."""
    address = ipaddress.ip_address(sock.getsockname()[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def exposure_warning(sock: socket.socket) -> str | None:
    """The one-line warning for a bind that other machines can reach, or None on loopback."""
    if is_loopback(sock):
        return None
    return (
        f"warning: the emulator is reachable from other machines at {url_for(sock)}; it is a test "
        "tool with no real security (hint: bind 127.0.0.1 unless you mean it, and set --api-key)"
    )


def warn_if_exposed(sock: socket.socket) -> None:
    warning = exposure_warning(sock)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def run_emulator(
    seed: int = 0,
    length: int = 2000,
    source: str = "numbered",
    quirks: str | Mapping[str, float] | None = "",
    faults: str | Mapping[str, Any] | None = "",
    decode_rate: float | None = None,
    rpm: int | None = None,
    otpm: int | None = None,
    model_specs: tuple = (),
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Any = None,
    openai_models: tuple[str, ...] = ("emulated",),
    openai_persona: str = "openai",
) -> Iterator[str]:
    """Run an emulator in a background thread; yields its base URL, stops it on exit.

    ``clock`` (optional) is any object with ``now()`` and ``advance(seconds)``, e.g.
    ``ManualClock()``, to move cache lifetimes and rate-limit refills by hand.
    ``openai_models``: the model ids the OpenAI-compatible endpoint serves; ``openai_persona``:
    the server it plays at ``/v1`` and the root (see openai_compat).
    """
    config = build_config(
        seed=seed,
        length=length,
        source=source,
        quirks=quirks,
        faults=faults,
        decode_rate=decode_rate,
        rpm=rpm,
        otpm=otpm,
        model_specs=tuple(model_specs),
        api_key=api_key,
        clock=clock,
        openai_models=tuple(openai_models),
        openai_persona=openai_persona,
    )
    sock = bind_socket(host, port)
    warn_if_exposed(sock)
    started = threading.Event()
    server = make_server(config, sock, on_started=started.set)
    thread = threading.Thread(
        target=lambda: server.run(sockets=[sock]), name="autocontinue-emulator", daemon=True
    )
    thread.start()
    try:
        while not started.wait(0.05):
            if not thread.is_alive():
                raise RuntimeError("the emulator did not start")
        yield url_for(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
