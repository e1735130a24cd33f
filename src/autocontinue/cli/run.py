"""``autocontinue run`` (the default command) and ``autocontinue demo``."""

from __future__ import annotations

import os
from typing import Any

import click

from ..catalogue import LOCAL_DEFAULT_MODEL
from ..journal import redact_url
from .common import journal_options, open_journal, output_options
from .errors import say
from .execute import execute
from .inputs import check_output_path, choose_backend, clean_prefill, read_prompt
from .output import AnswerOutput

__all__ = ["run", "demo", "build_request", "DEMO_PROMPT"]

DEMO_PROMPT = (
    "Please write five stories. Each should be at least 1000 words. Give each story a title "
    "and a clear beginning, middle and end. Put them in <story_1>, <story_2>, <story_3>, "
    "<story_4> and <story_5> tags."
)

#: Small, fast settings for the demo: enough rounds to show several seams, done in seconds.
DEMO_SETTINGS = {
    "local": {"max_tokens_per_call": 160, "max_rounds": 5, "seed": 7, "temperature": 0.7},
    "anthropic": {"max_tokens_per_call": 2000, "max_rounds": 6},
}


def build_request(prompt: str, **given: Any) -> dict[str, Any]:
    """The request as the journal keeps it: every stream option plus where it was sent."""
    backend = choose_backend(given.get("backend"))
    request: dict[str, Any] = {"prompt": prompt, **given, "backend": backend}
    if request.get("model_path"):
        request["model_path"] = os.path.abspath(os.path.expanduser(request["model_path"]))
    if backend == "anthropic" and os.environ.get("ANTHROPIC_BASE_URL"):
        request["base_url"] = redact_url(os.environ["ANTHROPIC_BASE_URL"])
    return request


@click.command("run")
@click.argument("prompt", required=False)
@click.option("-f", "--file", "prompt_file", metavar="FILE", help="Read the prompt from FILE (- for stdin).")
@click.option("--system", metavar="TEXT", help="System prompt.")
@click.option("--prefill", metavar="TEXT", help="Start the answer with TEXT (trailing whitespace is stripped).")
@click.option(
    "--backend", type=click.Choice(["anthropic", "local"]),
    help="Default: anthropic if ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL is set, else local.",
)
@click.option("--model", metavar="ID", help="Model id or alias (see: autocontinue models).")
@click.option("--model-path", type=click.Path(exists=True, dir_okay=False), help="GGUF file for the local backend.")
@click.option("--max-tokens-per-call", type=click.IntRange(1, 1_000_000), metavar="N", help="max_tokens of each call (default: the model's maximum; 512 on the local model).")
@click.option("--max-rounds", type=click.IntRange(1, 10_000), default=20, show_default=True, metavar="N", help="Most model calls.")
@click.option("--max-output-tokens", type=click.IntRange(1, 10_000_000), metavar="N", help="Stop after this many output tokens in all.")
@click.option("--strategy", type=click.Choice(["auto", "prefill", "user-turn"]), default="auto", show_default=True, help="How to continue.")
@click.option("--stop", "stop_sequences", multiple=True, metavar="SEQ", help="Stop sequence (repeatable).")
@click.option("--until", metavar="TEXT", help="Stop once the answer contains TEXT.")
@click.option("--min-words", type=click.IntRange(1, 10_000_000), metavar="N", help="Keep going until the answer has N words.")
@click.option("--temperature", type=click.FloatRange(0, 1), metavar="T", help="Sampling temperature, 0 to 1.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), metavar="N", help="Seed for the local backend (deterministic output).")
@click.option("--no-cache", is_flag=True, help="Do not use prompt caching.")
@output_options
@journal_options
def run(prompt: str | None, prompt_file: str | None, prefill: str | None, stop_sequences: tuple[str, ...],
        no_cache: bool, output: str | None, as_json: bool, quiet: bool, journal_path: str | None,
        no_journal: bool, **options: Any) -> None:
    """Write the complete answer to PROMPT (- reads stdin), continuing past the output cap.

    The answer streams to stdout; progress and a summary go to stderr. Every run is
    journaled: if it is interrupted, `autocontinue resume` finishes it.
    """
    text = read_prompt(prompt, prompt_file)
    out_file = check_output_path(output)
    request = build_request(
        text, prefill=clean_prefill(prefill, quiet=quiet), stop_sequences=list(stop_sequences) or None,
        cache=not no_cache, **options,
    )
    journal = open_journal(journal_path, no_journal)
    code = execute(request, journal=journal, output=AnswerOutput(out_file=out_file, as_json=as_json), quiet=quiet)
    raise SystemExit(code)


@click.command("demo")
@click.option("--backend", type=click.Choice(["anthropic", "local"]), help="Default: as for run.")
@click.option("--model", metavar="ID", help="Model id or alias.")
@click.option("--model-path", type=click.Path(exists=True, dir_okay=False), help="GGUF file for the local backend.")
@output_options
@journal_options
def demo(backend: str | None, model: str | None, model_path: str | None, output: str | None,
         as_json: bool, quiet: bool, journal_path: str | None, no_journal: bool) -> None:
    """The five-stories example: a long answer in several short calls, seams repaired.

    On the embedded local model it uses small calls and a few rounds so that it finishes in
    seconds; it exits 0 when it stops at that round budget.
    """
    chosen = choose_backend(backend)
    settings = DEMO_SETTINGS[chosen]
    request = build_request(DEMO_PROMPT, backend=chosen, model=model, model_path=model_path, **settings)
    if chosen == "local" and not model and not model_path:
        request["model"] = LOCAL_DEFAULT_MODEL
    if not quiet:
        say(
            f"demo: five stories on the {chosen} backend, {settings['max_tokens_per_call']} tokens per call, "
            f"at most {settings['max_rounds']} rounds"
        )
    out_file = check_output_path(output)
    journal = open_journal(journal_path, no_journal)
    code = execute(
        request, journal=journal, output=AnswerOutput(out_file=out_file, as_json=as_json), quiet=quiet,
        budget_exit=0,
    )
    raise SystemExit(code)
