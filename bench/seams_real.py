"""Seams on content that repeats itself, and on a real small model (issue 9).

Part 1, no model: four texts that genuinely repeat (JSON lines, a song with a refrain, a class
with look-alike properties, a guide whose second code block repeats the first) are written by
a stand-in model that continues the reference exactly, in rounds of ``cap`` characters, for
many caps, through the seam module alone (what the engine does: cut, send base, repair the
streamed piece). In user-turn mode half the continuations also echo the last 1-4 words. The
joined text must equal the reference. Counted per run: seams, repaired (an echo or preamble
trimmed), redone (a piece capped inside a possible overlap is reported unresolved; like the
engine, the round is redone once with twice the cap), lost (runs whose text lost real
characters, and how many), stalled (3 rounds in a row that added nothing).

Part 2, the real local model (SmolLM2-135M via llama-cpp-python, user-turn, 64 tokens a
call, greedy, at most 8 rounds): four prompts through ``autocontinue.generate``. Counted from
the seam reports: seams, repaired, nothing-new rounds, unresolved and restart reports, held
words lost (a round that added nothing whose held word is not asked for again, or an answer
that ends without it), the most rounds in a row without progress, and runs that ended
``stalled``.

Run: ``python -m bench.seams_real [--no-model]`` (part 1 about 10 s, part 2 about a minute
on 2 cores); writes bench/out/seams_real.json.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from autocontinue.seams import SeamRepairer, SeamReport, split_for_continuation

DELTA = 16
CAPS = tuple(range(48, 400, 8))  # above the longest held word (32 chars) and its whitespace
STALL = 3


def _texts() -> dict[str, str]:
    rows = "".join(f'{{"id": {i % 3}, "name": "item", "tags": ["a", "b"], "ok": true}}\n' for i in range(40))
    refrain = "Oh la la, we sing all night long,\nla la la, the night is young.\n"
    verses = [
        f"Verse {n}: the river runs, the river turns,\nand every night the lantern burns.\n"
        for n in range(1, 6)
    ]
    song = "".join(v + refrain + refrain for v in verses)
    props = "".join(
        f'    @property\n    def {name}(self) -> int:\n        """The {name}."""\n        return self._{name}\n\n'
        for name in ("width", "height", "depth", "width_px", "height_px", "depth_px")
    )
    klass = "class Box:\n    def __init__(self) -> None:\n        self._width = 0\n\n" + props
    block = "```python\nimport autocontinue\nresult = autocontinue.generate(prompt, max_tokens_per_call=4096)\nprint(result.text)\n```\n"
    guide = (
        "# Quick start\n\nInstall the package, then run:\n\n"
        + block
        + "\nThat is all. To continue a long answer, run the same thing again:\n\n"
        + block
        + "\n## Notes\n\nThe same code works for every model; the same code works for every length.\n"
    )
    return {
        "json_lines": rows.rstrip(),
        "song": song.rstrip(),
        "look_alike_class": klass.rstrip(),
        "guide": guide.rstrip(),
    }


def _echo(base: str, words: int) -> str:
    starts = [i for i in range(len(base)) if not base[i].isspace() and (i == 0 or base[i - 1].isspace())]
    return base[starts[-min(words, len(starts))] :] if starts else ""


def _round(
    reference: str, base: str, held: str, echo: str, strategy: str, cap: int
) -> tuple[str, SeamReport]:
    """One call of the stand-in model: ``echo`` then the reference from ``base`` on, ``cap`` chars."""
    piece = reference[len(base) : len(base) + cap]
    capped = len(base) + len(piece) < len(reference)
    piece = echo + piece
    repairer = SeamRepairer(base, held, strategy)
    out = "".join(repairer.feed(piece[i : i + DELTA]) for i in range(0, len(piece), DELTA))
    return out + repairer.finish(capped=capped), repairer.report


def join_run(reference: str, strategy: str, cap: int, rng: random.Random) -> dict[str, Any]:
    """One run of the stand-in model over ``reference``; what the seams did.

    The run stops at the first seam whose join is not the reference (the stand-in can only
    continue the reference); that seam's damage is counted as deleted or duplicated chars.
    """
    so_far, seams, repaired, redone, idle = reference[:cap], 0, 0, 0, 0
    while so_far != reference and idle < STALL and reference.startswith(so_far):
        base, held = split_for_continuation(so_far, strategy)
        echo = (
            _echo(base, rng.randint(1, 4))
            if strategy == "user-turn" and held.strip() and rng.random() < 0.5
            else ""
        )
        out, report = _round(reference, base, held, echo, strategy, cap)
        if getattr(
            report, "unresolved", False
        ):  # what the engine does: redo the round once with a larger cap
            out, report = _round(reference, base, held, echo, strategy, 2 * cap)
            redone += 1
        seams += 1
        repaired += bool(report.trimmed_echo or report.trimmed_preamble)
        grown = base + out
        idle = idle + 1 if len(grown) <= len(so_far) else 0
        so_far = grown
    deleted, duplicated = _damage(so_far, reference)
    return {
        "seams": seams,
        "repaired": repaired,
        "redone": redone,
        "exact": so_far == reference,
        "deleted": deleted,
        "duplicated": duplicated,
        "stalled": idle >= STALL,
    }


def _damage(joined: str, reference: str) -> tuple[int, int]:
    """Characters of the reference missing from ``joined`` at its first wrong seam, and extra ones."""
    if reference.startswith(joined):
        return 0, 0
    common = next(i for i, (a, b) in enumerate(zip(joined + "\0", reference + "\1")) if a != b)
    extra = joined[common:]
    if reference[common:].startswith(extra):  # the join fell behind: real text was deleted
        return len(extra), 0
    for size in range(1, len(extra) + 1):  # text repeated, then the reference again
        if reference[common:].startswith(extra[size:]):
            return 0, size
    return len(extra), len(extra)


def part_one() -> list[dict[str, Any]]:
    rows = []
    for name, text in _texts().items():
        for strategy in ("prefill", "user-turn"):
            rng = random.Random(7)
            runs = [join_run(text, strategy, cap, rng) for cap in CAPS]
            rows.append(
                {
                    "text": name,
                    "chars": len(text),
                    "strategy": strategy,
                    "runs": len(runs),
                    "seams": sum(r["seams"] for r in runs),
                    "repaired": sum(r["repaired"] for r in runs),
                    "redone": sum(r["redone"] for r in runs),
                    "wrong_runs": sum(not r["exact"] for r in runs),
                    "deleted_chars": sum(r["deleted"] for r in runs),
                    "duplicated_chars": sum(r["duplicated"] for r in runs),
                    "stalled_runs": sum(r["stalled"] for r in runs),
                }
            )
    return rows


PROMPTS = (
    "Write a short essay about the history of bicycles.",
    "Write a Python class Rectangle with width, height, area and perimeter properties, with docstrings.",
    "Write a markdown table of ten countries with their capital and main language.",
    "Write a summary of the water cycle in five paragraphs.",
)


def part_two() -> dict[str, Any]:
    import autocontinue
    from autocontinue.backends.local import LocalBackend

    totals: dict[str, Any] = {
        "runs": 0,
        "rounds": 0,
        "seams": 0,
        "repaired": 0,
        "nothing_new": 0,
        "unresolved": 0,
        "restart": 0,
        "held_lost": 0,
        "most_idle_in_a_row": 0,
        "stalled_runs": 0,
        "stop_reasons": {},
    }
    for prompt in PROMPTS:
        backend = LocalBackend(seed=1)
        try:
            result = autocontinue.generate(
                prompt,
                backend=backend,
                strategy="user-turn",
                max_tokens_per_call=64,
                max_rounds=8,
                temperature=0,
                seed=1,
            )
        finally:
            backend.close()
        _count(result, totals)
        print(f"  {prompt[:40]!r}: {len(result.rounds)} rounds, {result.stop_reason}", file=sys.stderr)
    return totals


def _count(result: Any, totals: dict[str, Any]) -> None:
    """Add one run's seams to ``totals`` (held words lost: as in tests/test_seams_local_model.py)."""
    totals["runs"] += 1
    totals["rounds"] += len(result.rounds)
    reasons = totals["stop_reasons"]
    reasons[result.stop_reason] = reasons.get(result.stop_reason, 0) + 1
    totals["stalled_runs"] += result.stop_reason == "stalled"
    rounds, idle = result.rounds[1:], 0
    for report in rounds:
        seam = report.seam or {}
        totals["seams"] += 1
        totals["repaired"] += bool(seam.get("trimmed_echo") or seam.get("trimmed_preamble"))
        totals["nothing_new"] += seam.get("verdict") == "nothing-new"
        totals["unresolved"] += bool(seam.get("unresolved"))
        totals["restart"] += bool(seam.get("restart"))
        idle = idle + 1 if report.chars == 0 else 0
        totals["most_idle_in_a_row"] = max(totals["most_idle_in_a_row"], idle)
    for before, after in zip(rounds, rounds[1:]):
        held = before.seam.get("dropped_partial")
        totals["held_lost"] += bool(before.chars == 0 and held and after.seam.get("dropped_partial") != held)
    last = (rounds[-1].seam.get("dropped_partial") or "").strip() if rounds else ""
    totals["held_lost"] += bool(
        rounds and rounds[-1].chars == 0 and last and not result.text.rstrip().endswith(last)
    )


#: Part 1 on main before the rebuild (f7f1709, the old seams.py), same command with
#: ``PYTHONPATH=<checkout of f7f1709>/src``: wrong runs / stalled runs, out of 44 caps each.
BEFORE = {
    ("json_lines", "prefill"): (43, 43),
    ("json_lines", "user-turn"): (43, 43),
    ("song", "prefill"): (19, 18),
    ("song", "user-turn"): (9, 7),
    ("look_alike_class", "prefill"): (0, 0),
    ("look_alike_class", "user-turn"): (0, 0),
    ("guide", "prefill"): (0, 0),
    ("guide", "user-turn"): (0, 0),
}


def report_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The part of docs/benchmarks.md's seam section that this bench measures."""
    out.append("### Seams on text that repeats itself, and on a real small model\n")
    if not data:
        out.append("Not measured in this run (no bench/out/seams_real.json; `python -m bench.seams_real`).\n")
        return
    first, last, step = data["caps"]
    out.append(
        f"`bench/seams_real.py`: a stand-in model continues each reference exactly in rounds of {first}-{last} "
        f"characters (every {step}), in user-turn mode echoing the last 1-4 words half the time; the seam "
        "module joins the pieces. A run is wrong when its text is not the reference; it stalls after 3 "
        "rounds in a row that add nothing. Before: main at f7f1709, same runs.\n"
    )
    out.append("Command: `python -m bench.seams_real`\n")
    out.append(
        "| text | strategy | runs | seams | repaired | redone | wrong runs | deleted chars | duplicated chars "
        "| stalled runs | before: wrong / stalled |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in data["part_one"]:
        wrong, stalled = BEFORE.get((r["text"], r["strategy"]), ("?", "?"))
        out.append(
            f"| {r['text']} | {r['strategy']} | {r['runs']} | {r['seams']} | {r['repaired']} | {r['redone']} "
            f"| {r['wrong_runs']} | {r['deleted_chars']} | {r['duplicated_chars']} | {r['stalled_runs']} "
            f"| {wrong} / {stalled} |"
        )
    if any(r["duplicated_chars"] for r in data["part_one"]):
        out.append(
            "\n- Duplicated characters: an echo in text that repeats itself together with the held word "
            '("la la" echoed before " la" after "... la la"): a short and a long overlap both read '
            "exactly, and the shorter is trimmed, so a repeat may stay but nothing real is deleted."
        )
        out.append(
            '- Before, a piece that equalled earlier text was dropped as "all repeat" and the same call '
            "repeated: the wrong runs all stalled."
        )
    model = data.get("part_two")
    if model:
        out.append(
            f"\nReal SmolLM2-135M (user-turn, 64 tokens a call, greedy, {model['runs']} prompts, "
            f"{model['rounds']} rounds): {model['seams']} seams, {model['repaired']} repaired (echo or preamble "
            f"trimmed), {model['nothing_new']} nothing-new, {model['unresolved']} unresolved, {model['restart']} "
            f"restart reports, **{model['held_lost']} held words lost**, at most {model['most_idle_in_a_row']} "
            f"rounds in a row without progress, {model['stalled_runs']} runs ended `stalled` (stop reasons: "
            + ", ".join(f"{k} {v}" for k, v in sorted(model["stop_reasons"].items()))
            + ")."
        )
    out.append("")


def main(argv: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"caps": [CAPS[0], CAPS[-1], CAPS[1] - CAPS[0]], "part_one": part_one()}
    if "--no-model" not in argv:
        out["part_two"] = part_two()
    path = Path(__file__).parent / "out" / "seams_real.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
