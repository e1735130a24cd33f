"""``autocontinue demo``: the product's point in a few seconds on the embedded local model.

A long answer is asked for with a small cap per call, so it takes several rounds; each round
continues the answer by true prefill (the model sees its own last tokens as the start of its
reply), the seams are repaired, and a closing summary says where the seams were, what was
repaired, and what it cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .common import journal_options, open_journal, output_options
from .errors import say
from .history import plural
from .inputs import check_output_path, choose_backend
from .options import BACKENDS
from .output import AnswerOutput
from .progress import cost_text

if TYPE_CHECKING:
    from ..events import Result

__all__ = ["demo", "DEMO_PROMPT", "DEMO_SETTINGS", "seam_summary"]

DEMO_PROMPT = (
    "Write a long story about a lighthouse keeper who finds a message in a bottle. Tell it in "
    "many paragraphs, with a title, dialogue and a clear beginning, middle and end."
)

#: Small calls, so the answer takes several rounds (the small local model writes about 400
#: tokens on this prompt before it ends on its own), all continued by prefill.
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "local": {"max_tokens_per_call": 40, "max_rounds": 12, "seed": 7, "temperature": 0.7},
    "anthropic": {"max_tokens_per_call": 400, "max_rounds": 8},
    "openai": {"max_tokens_per_call": 400, "max_rounds": 8},
}

_REPAIRS = {
    "trimmed_echo": "repeated text trimmed",
    "trimmed_preamble": "preamble trimmed",
    "restored_whitespace": "space restored",
    "dropped_partial": "broken word redone",
}


def _repairs(seam: dict[str, Any]) -> list[str]:
    return [label for key, label in _REPAIRS.items() if seam.get(key)]


def seam_summary(result: Result) -> list[str]:
    """Closing lines: rounds and how they continued, where each seam is, what was repaired."""
    rounds = result.rounds
    strategies = sorted({r.strategy for r in rounds[1:]})
    how = " and ".join(strategies) or "one call"
    lines = [f"{plural(len(rounds), 'round')} on {result.backend} ({result.model}), continued by {how}"]
    position, seams = 0, []
    repaired: dict[str, int] = {}
    for report in rounds:
        if report.index > 0:
            found = _repairs(report.seam)
            for label in found:
                repaired[label] = repaired.get(label, 0) + 1
            seams.append(f"{position:,}" + (f" ({', '.join(found)})" if found else ""))
        position += report.chars
    if seams:
        lines.append(f"seams at characters {'; '.join(seams)}")
        done = ", ".join(f"{label} at {n}" for label, n in repaired.items()) or "nothing needed repair"
        lines.append(f"repairs: {done}; the answer reads as one text")
    usage = result.usage
    lines.append(
        f"{usage.output_tokens:,} tokens out, {usage.total_input_tokens:,} in, "
        + cost_text(result.cost_usd, result.cost_known, result.backend)
    )
    if result.stop_reason == "max_rounds":
        lines.append(
            f'the demo stops after {len(rounds)} rounds; the whole story: autocontinue run "..." '
            "--backend local --max-tokens-per-call 40"
        )
    return lines


@click.command("demo")
@click.option("--backend", type=click.Choice(BACKENDS), help="Default: as for run.")
@click.option("--model", metavar="ID", help="Model id or alias.")
@click.option(
    "--model-path", type=click.Path(exists=True, dir_okay=False), help="GGUF file for the local backend."
)
@output_options
@journal_options
def demo(
    backend: str | None,
    model: str | None,
    model_path: str | None,
    output: str | None,
    as_json: bool,
    quiet: bool,
    journal_path: str | None,
    no_journal: bool,
) -> None:
    """A long answer in several rounds on the local model, seams repaired.

    The answer is asked for in small calls, so it takes several rounds; the closing summary
    says where the seams were and what was repaired. Exits 0 when it stops at its round
    budget.
    """
    from ..catalogue import LOCAL_DEFAULT_MODEL
    from .execute import execute
    from .run import build_request

    chosen = choose_backend(backend)
    settings = DEMO_SETTINGS[chosen]
    if chosen == "local" and not model and not model_path:
        model = LOCAL_DEFAULT_MODEL
    given = {"backend": chosen, "model": model, "model_path": model_path, **settings}
    request = build_request(DEMO_PROMPT, {k: v for k, v in given.items() if v is not None})
    if not quiet:
        say(
            f"demo: a long story on the {chosen} backend in calls of {settings['max_tokens_per_call']} tokens "
            f"(at most {settings['max_rounds']} rounds), each round continuing the last"
        )
    out_file = check_output_path(output)
    journal = open_journal(journal_path, no_journal)
    answer = AnswerOutput(out_file=out_file, as_json=as_json)
    code = execute(
        request,
        journal=journal,
        output=answer,
        quiet=quiet,
        budget_exit=0,
        on_result=None if quiet else _say_summary,
    )
    raise SystemExit(code)


def _say_summary(result: Result) -> None:
    for line in seam_summary(result):
        say(f"demo: {line}")
