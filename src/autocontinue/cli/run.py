"""``autocontinue run`` (the default command): one prompt, the whole answer."""

from __future__ import annotations

import os
from typing import Any

import click

from .common import journal_options, open_journal, output_options
from .options import options_from_cli, run_options

__all__ = ["run", "build_request"]


def build_request(prompt: str, given: dict[str, Any]) -> dict[str, Any]:
    """The request as the journal keeps it: the prompt, the backend name, every Options field
    (``Options.to_record()``) and, for information, the endpoint the environment chose.

    Refuses bad values (ConfigurationError with a hint) before any call.
    """
    from .inputs import check_endpoint, choose_backend

    backend = choose_backend(given.get("backend"), given.get("base_url"))
    endpoint = check_endpoint(backend, given.get("base_url"))  # before the heavier imports: fails fast
    from ..journal import redact_url
    from ..options import Options

    settings = {key: value for key, value in given.items() if key != "backend"}
    if settings.get("model_path"):
        settings["model_path"] = os.path.abspath(os.path.expanduser(settings["model_path"]))
    record = Options(**settings).validate().to_record()
    request: dict[str, Any] = {"prompt": prompt, "backend": backend, **record}
    if endpoint:
        request["endpoint"] = redact_url(endpoint)
    if record.get("base_url"):
        request["base_url"] = redact_url(record["base_url"])
    return request


@click.command("run")
@click.argument("prompt", required=False)
@click.option("-f", "--file", "prompt_file", metavar="FILE", help="Read the prompt from FILE (- for stdin).")
@run_options
@output_options
@journal_options
def run(
    prompt: str | None,
    prompt_file: str | None,
    output: str | None,
    as_json: bool,
    quiet: bool,
    journal_path: str | None,
    no_journal: bool,
    **values: Any,
) -> None:
    """Write the complete answer to PROMPT, continuing past the output cap.

    PROMPT may be - (stdin); with no PROMPT and no -f, a piped stdin is the prompt. The
    answer streams to stdout; progress and a summary go to stderr. Every run is journaled:
    if it is interrupted, `autocontinue resume` finishes it.
    """
    from .inputs import check_output_path, clean_prefill, read_prompt

    given = options_from_cli(values)
    text = read_prompt(prompt, prompt_file, quiet=quiet)
    out_file = check_output_path(output, reads=prompt_file)
    if "prefill" in given:
        given["prefill"] = clean_prefill(given["prefill"], quiet=quiet)
    request = build_request(text, given)
    from .execute import execute
    from .output import AnswerOutput

    journal = open_journal(journal_path, no_journal)
    code = execute(
        request, journal=journal, output=AnswerOutput(out_file=out_file, as_json=as_json), quiet=quiet
    )
    raise SystemExit(code)
