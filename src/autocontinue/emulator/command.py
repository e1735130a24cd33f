"""The ``autocontinue emulate`` command: serve the API emulator until interrupted.

Prints ``listening on http://HOST:PORT`` on stderr once it accepts connections (and a one-line
warning first when HOST is not a loopback address). Ctrl-C stops it cleanly. A bad option value prints one line (``autocontinue: ... (hint: ...)``, the prefix of every
command's errors) and exits with code 2;
a port that cannot be bound exits with code 1.
"""

from __future__ import annotations

import sys

import click

from ..errors import AutocontinueError
from .quirks import QUIRKS_EXAMPLE

__all__ = ["emulate"]


def _fail(message: str, code: int) -> None:
    click.echo(f"autocontinue: {message}", err=True)
    sys.exit(code)


@click.command("emulate")
@click.option(
    "--host",
    default="127.0.0.1",
    metavar="HOST",
    show_default=True,
    help="Address to bind (loopback by default).",
)
@click.option(
    "--port", default="8089", metavar="PORT", show_default=True, help="Port to bind (0 picks a free one)."
)
@click.option(
    "--seed", default="0", metavar="N", show_default=True, help="Seed of the answers, quirks and faults."
)
@click.option(
    "--length", default="2000", metavar="TOKENS", show_default=True, help="Tokens in each full answer."
)
@click.option(
    "--source",
    default="numbered",
    metavar="SOURCE",
    show_default=True,
    help="numbered, corpus:PATH or local.",
)
@click.option(
    "--quirks",
    default="",
    metavar="LIST",
    help=f"Seeded model quirks with their probabilities, e.g. {QUIRKS_EXAMPLE} (restart: a user-turn "
    "continuation starts the answer over; restart-section: from its section's heading).",
)
@click.option(
    "--faults",
    default="",
    metavar="LIST",
    help="e.g. 529:0.1,429:0.05,500:0.02,drop:0.05,stream-error:0.02 or 529@1,drop@3 (also malformed, no-stop)",
)
@click.option(
    "--decode-rate",
    default=None,
    metavar="TOKENS_PER_S",
    help="Output tokens per second per stream (unset: as fast as possible).",
)
@click.option("--rpm", default=None, metavar="N", help="Requests per minute allowed.")
@click.option("--otpm", default=None, metavar="N", help="Output tokens per minute allowed.")
@click.option(
    "--model-spec",
    "model_specs",
    multiple=True,
    metavar="SPEC",
    help="NAME:context=4000,max_output=300,prefill=no (repeatable).",
)
@click.option(
    "--api-key",
    default=None,
    metavar="KEY",
    help="Require this key (x-api-key); without it any key is accepted.",
)
def emulate(host, port, seed, length, source, quirks, faults, decode_rate, rpm, otpm, model_specs, api_key):
    """Serve a local emulator of the Anthropic Messages API until interrupted.

    \b
    Point a client at it: ANTHROPIC_BASE_URL=http://127.0.0.1:8089 (any key).
    Endpoints: POST /v1/messages, POST /v1/messages/count_tokens,
    GET /emulator/stats, POST /emulator/reset, POST /emulator/clock {"advance": S}.
    Message Batches: /v1/messages/batches (create, list, retrieve, cancel, results);
    POST /emulator/batches {"processing_delay": S, "cancel_delay": S, "outcomes": [...],
    "create_errors": [...], "poll_errors": [...]}, GET for what was billed and downloaded.
    POST /emulator/reset also forgets every batch and what they billed and downloaded.
    """
    from . import bind_socket, build_config, make_server, url_for, warn_if_exposed

    try:
        config = build_config(
            seed=_number(seed, int, "seed"),
            length=_number(length, int, "length"),
            source=source,
            quirks=quirks,
            faults=faults,
            decode_rate=_number(decode_rate, float, "decode rate"),
            rpm=_number(rpm, int, "rpm"),
            otpm=_number(otpm, int, "otpm"),
            model_specs=model_specs,
            api_key=api_key,
        )
    except AutocontinueError as exc:
        _fail(exc.one_line(), 2)
    try:
        port = int(port)
    except ValueError:
        _fail(f"bad port {port!r} (hint: use a number in 0..65535)", 2)
    if not 0 <= port <= 65535:
        _fail(f"bad port {port} (hint: use 0..65535)", 2)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (hint: choose another --port)", 1)
    warn_if_exposed(sock)
    url = url_for(sock)
    server = make_server(config, sock, on_started=lambda: click.echo(f"listening on {url}", err=True))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        sock.close()


def _number(value, kind, name):
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        from ..errors import ConfigurationError

        raise ConfigurationError(f"bad {name} {value!r}", hint=f"the {name} must be a number") from None
