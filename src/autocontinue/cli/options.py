"""The run options of the command line, derived from ``autocontinue.options.Options``.

Every recordable field of ``Options`` (``OPTION_FIELDS``) becomes one click option; this module
only adds what the command line needs beyond the field itself: the flag, a help line, a click
type for range checks. A field with no entry in ``CLI_META`` still gets an option, named after
the field and typed from its annotation; ``test_cli_first_contact`` insists every field has an
entry. ``CLI_EXCLUDED`` are the fields that hold live objects (a client, a checkpoint, a retry
policy). ``run`` and ``batch`` take the same options (``cli_options``); a batch's are the
defaults of every item, so it applies none of its own.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ..options import OPTION_FIELDS, Effort, Options, ServerKind, Strategy, Thinking

__all__ = [
    "CLI_EXCLUDED",
    "CLI_META",
    "BACKENDS",
    "CliOption",
    "cli_fields",
    "cli_options",
    "run_options",
    "options_from_cli",
]

#: Backend names the command line accepts.
BACKENDS = ("anthropic", "local", "openai")

#: Options fields that are live objects, not settings: not on the command line.
CLI_EXCLUDED = frozenset({"client", "resume", "retry"})


@dataclass(frozen=True)
class CliOption:
    """How one Options field appears on the command line."""

    help: str
    #: The flag (default: ``--field-name``).
    flag: str | None = None
    type: Any = None
    metavar: str | None = None
    #: Repeatable (the field is a tuple); for a bool field the flag turns it off.
    multiple: bool = False
    negate: bool = False


def _choice(literal: Any) -> click.Choice:
    return click.Choice(list(typing.get_args(literal)))


CLI_META: dict[str, CliOption] = {
    "model": CliOption("Model id or alias (see: autocontinue models).", metavar="ID"),
    "backend": CliOption(
        "Default: anthropic if ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL is set, else local.",
        type=click.Choice(BACKENDS),
    ),
    "system": CliOption("System prompt.", metavar="TEXT"),
    "prefill": CliOption("Start the answer with TEXT (trailing whitespace is stripped).", metavar="TEXT"),
    "max_tokens_per_call": CliOption(
        "max_tokens of each call (default: the model's maximum; 512 on the local model).",
        type=click.IntRange(1, 1_000_000),
        metavar="N",
    ),
    "max_rounds": CliOption("Most model calls.", type=click.IntRange(1, 10_000), metavar="N"),
    "max_output_tokens": CliOption(
        "Stop after this many output tokens in all.", type=click.IntRange(1, 10_000_000), metavar="N"
    ),
    "strategy": CliOption("How to continue.", type=_choice(Strategy)),
    "stop_sequences": CliOption("Stop sequence (repeatable).", flag="--stop", metavar="SEQ", multiple=True),
    "until": CliOption("Stop once the answer contains TEXT.", metavar="TEXT"),
    "min_words": CliOption(
        "Keep going until the answer has N words.", type=click.IntRange(1, 10_000_000), metavar="N"
    ),
    "max_words": CliOption(
        "Stop at a sentence end once the answer has passed N words.",
        type=click.IntRange(1, 10_000_000),
        metavar="N",
    ),
    "temperature": CliOption("Sampling temperature, 0 to 1.", type=click.FloatRange(0, 1), metavar="T"),
    "cache": CliOption("Do not use prompt caching.", flag="--no-cache", negate=True),
    "seed": CliOption(
        "Seed (local and OpenAI-compatible backends: deterministic output).", type=int, metavar="N"
    ),
    "model_path": CliOption(
        "GGUF file for the local backend.", type=click.Path(exists=True, dir_okay=False), metavar="FILE"
    ),
    "thinking": CliOption("Thinking mode, where the model allows a choice.", type=_choice(Thinking)),
    "effort": CliOption("Reasoning effort of the first round.", type=_choice(Effort)),
    "base_url": CliOption(
        "API endpoint (default: ANTHROPIC_BASE_URL for anthropic; required for openai).", metavar="URL"
    ),
    "server": CliOption(
        "How an OpenAI-compatible server continues an answer (default: probe it).", type=_choice(ServerKind)
    ),
}

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Options)}


def cli_fields() -> list[str]:
    """The Options fields offered on the command line, in declaration order."""
    return [name for name in OPTION_FIELDS if name not in CLI_EXCLUDED]


def _derived(name: str) -> CliOption:
    """An option for a field without CLI metadata, typed from its annotation."""
    hint = typing.get_type_hints(Options).get(name, str)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = args[0]
    if kind is bool:
        return CliOption(
            f"Set {name}.",
            negate=_DEFAULTS.get(name) is True,
            flag=f"--no-{name.replace('_', '-')}" if _DEFAULTS.get(name) is True else None,
        )
    if typing.get_origin(kind) is typing.Literal:
        return CliOption(f"Set {name}.", type=_choice(kind))
    return CliOption(f"Set {name}.", type=kind if kind in (int, float) else str)


def _meta(name: str) -> CliOption:
    return CLI_META.get(name) or _derived(name)


def _click_option(
    name: str, *, help: str | None = None, defaults: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    meta = _meta(name)
    flag = meta.flag or "--" + name.replace("_", "-")
    if meta.negate:
        return click.option(flag, f"opt_{name}", is_flag=True, default=False, help=help or meta.help)
    default = _DEFAULTS.get(name)
    shown = default not in (None, (), dataclasses.MISSING) and not meta.multiple
    text = help or meta.help
    if shown and not defaults:  # none applied: the help still says what an unset option comes to
        text = f"{text.removesuffix('.')} (default: {default})."
    return click.option(
        flag,
        f"opt_{name}",
        type=meta.type,
        metavar=meta.metavar,
        multiple=meta.multiple,
        default=default if shown and defaults else None,
        show_default=shown and defaults,
        help=text,
    )


def cli_options(
    *, help: dict[str, str] | None = None, defaults: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding one click option per Options field (values arrive as ``opt_*``).

    ``help`` replaces the help line of the fields a command means differently (a batch's
    ``--model`` is the model of every item that names none). With ``defaults=False`` no
    default is applied: an option the user did not give stays unset (``options_from_cli``
    leaves it out), and its help only shows the default it comes to.
    """
    unknown = set(help or {}) - set(cli_fields())
    assert not unknown, f"help for fields that are no options: {sorted(unknown)}"

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(cli_fields()):
            command = _click_option(name, help=(help or {}).get(name), defaults=defaults)(command)
        return command

    return decorate


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with one option per Options field (values arrive as ``opt_*``)."""
    return cli_options()(command)


def options_from_cli(values: dict[str, Any]) -> dict[str, Any]:
    """The Options keyword arguments the user set, from the command's ``opt_*`` parameters.

    Pops those parameters from ``values``; unset ones (None, an empty repeat, an unused
    ``--no-`` flag) are left out, so Options' own defaults apply.
    """
    chosen: dict[str, Any] = {}
    for name in cli_fields():
        value = values.pop(f"opt_{name}", None)
        meta = _meta(name)
        if meta.negate:
            if value:
                chosen[name] = not _DEFAULTS.get(name)
        elif meta.multiple:
            if value:
                chosen[name] = tuple(value)
        elif value is not None:
            chosen[name] = value
    return chosen
