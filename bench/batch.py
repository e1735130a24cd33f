"""Batches on the emulator: throughput against the rate-limit bound, cost via Message Batches
against live, and kill -9 during a batch then resume.

    python -m bench.batch              # all three parts (about 15 minutes here)
    python -m bench.batch --only throughput   # the rate-limit part alone (about 3 minutes)
    python -m bench.batch --quick      # tiny sizes, a smoke run

1. Throughput: 1,000 items of mixed length (1 to 3 rounds of 50 to 200 tokens, prompts of 3
   to 183 words) against an emulator with an output-token (then a request) rate limit: the
   wall time against the shortest the limit allows (the bucket starts full, a minute's worth,
   then refills at the limit), and the share of calls refused with 429.
2. Cost: the same items live and ``via="batches"`` on claude-sonnet-4-6, long answers (the 300k
   beta makes them one round in a batch, two live) and short ones; the emulator's bill.
3. Crashes: an N-item batch in a subprocess killed with SIGKILL K times at random moments,
   then rerun to the end: the output against an uninterrupted run, and billed calls against
   landed rounds.
4. Crashes through Message Batches (``--via batches``): the same, every other kill inside the
   window between the service accepting a job and the journal learning its id (the emulator
   holds the create's response, the process is killed once the job exists), the others at
   random moments; the output against an uninterrupted run, custom ids billed more than once,
   and service jobs made against the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run", "main", "report_section"]

MODEL = "claude-haiku-4-5"
TARGET_THROUGHPUT = 0.9
TARGET_THROTTLED = 0.02
TARGET_COST = 0.5


def _stats(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + "/emulator/stats") as response:
        return dict(json.load(response))


def _env(url: str) -> None:
    os.environ["ANTHROPIC_BASE_URL"] = url
    os.environ["ANTHROPIC_API_KEY"] = "bench"


#: Mixed lengths: each item's rounds cap and per-call output, and prompts of 4 to about 200 words.
ROUNDS = (1, 2, 3)
PER_CALL = (50, 100, 150, 200)
ANSWER_TOKENS = 500  # past 2 rounds of 200 or 3 of 150 the answer ends on its own (end_turn)


def _mixed_items(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"m{i}",
            "prompt": f"Write report {i}" + " on the figures of the quarter" * (i % 7 * 5),
            "max_rounds": ROUNDS[i % len(ROUNDS)],
            "max_tokens_per_call": PER_CALL[i % len(PER_CALL)],
        }
        for i in range(n)
    ]


def throughput(kind: str, n: int, limit: int, concurrency: int) -> dict[str, Any]:
    """One limited run: ``kind`` is "output" (otpm) or "requests" (rpm).

    The clock starts once the emulator is up and the SDK imported (start-up, not pacing), and
    stops when the last item is written.
    """
    import autocontinue
    from autocontinue.emulator import run_emulator
    from autocontinue.events import RoundFinished

    options: dict[str, Any] = {"otpm": limit} if kind == "output" else {"rpm": limit}
    items = _mixed_items(n)
    done = [0.0]

    def on_event(item_id: str, event: Any) -> None:
        if isinstance(event, RoundFinished):
            done[0] += event.report.usage.output_tokens if kind == "output" else 1

    with run_emulator(length=ANSWER_TOKENS, **options) as url, tempfile.TemporaryDirectory() as scratch:
        _env(url)
        import anthropic  # noqa: F401  (its import, seconds on a loaded machine, is not pacing)

        started = time.monotonic()
        result = autocontinue.batch(
            items,
            journal=f"{scratch}/j.sqlite3",
            output=f"{scratch}/o.jsonl",
            model=MODEL,
            concurrency=concurrency,
            on_event=on_event,
        )
        elapsed = time.monotonic() - started
        stats = _stats(url)
    total = done[0]
    return {
        "kind": kind,
        "items": n,
        "limit_per_minute": limit,
        "concurrency": concurrency,
        "calls": stats["requests"],
        "throttled": stats["errors"],
        "throttled_share": stats["errors"] / max(1, stats["requests"]),
        "total": total,
        "output_tokens": stats["output_tokens"],
        "seconds": round(elapsed, 2),
        "limit_per_s": round(limit / 60, 2),
        "bound_s": round(max(0.0, total - limit) / (limit / 60), 2),
        "bound_share": round(max(0.0, total - limit) / (limit / 60) / elapsed, 4),
        "failed": len(result.failed),
    }


def cost(long_items: int, short_items: int, long_tokens: int) -> dict[str, Any]:
    """The same items live and through Message Batches; the emulator's bills."""
    import autocontinue
    from autocontinue.emulator import run_emulator

    out: dict[str, Any] = {"model": "claude-sonnet-4-6", "long_tokens": long_tokens}
    for label, n, length in (("long", long_items, long_tokens), ("short", short_items, 2000)):
        items = [{"id": f"{label}{i}", "prompt": f"Write document {i} in full"} for i in range(n)]
        row: dict[str, Any] = {"items": n, "answer_tokens": length}
        texts = {}
        for via in ("live", "batches"):
            with run_emulator(length=length) as url, tempfile.TemporaryDirectory() as scratch:
                _env(url)
                result = autocontinue.batch(
                    items,
                    journal=f"{scratch}/j.sqlite3",
                    output=f"{scratch}/o.jsonl",
                    model="claude-sonnet-4-6",
                    via=via,
                    poll_interval=0.05,
                    concurrency=4,
                )
                stats = _stats(url)
            texts[via] = [r.text for r in result.results]
            row[via] = {
                "cost_usd": round(stats["cost_usd"], 6),
                "calls": sum(r.rounds for r in result.results),
                "output_tokens": stats["output_tokens"],
            }
        row["ratio"] = round(row["batches"]["cost_usd"] / row["live"]["cost_usd"], 4)
        row["same_text"] = texts["live"] == texts["batches"]
        out[label] = row
    live = sum(out[k]["live"]["cost_usd"] for k in ("long", "short"))
    via = sum(out[k]["batches"]["cost_usd"] for k in ("long", "short"))
    out["ratio"] = round(via / live, 4)
    return out


def crashes(n: int, kills: int, seed: int = 7) -> dict[str, Any]:
    """Kill a CLI batch ``kills`` times, rerun it to the end, compare with an uninterrupted run."""
    from autocontinue.emulator import run_emulator

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        source = scratch / "in.jsonl"
        source.write_text(
            "".join(json.dumps({"id": f"k{i}", "prompt": f"Write note {i}"}) + "\n" for i in range(n))
        )
        args = [
            sys.executable,
            "-m",
            "autocontinue",
            "batch",
            str(source),
            "--model",
            MODEL,
            "--max-tokens-per-call",
            "300",
            "--concurrency",
            "16",
            "-q",
        ]
        # Rounds of about a second (300 tokens at 300 tokens/s), as calls to a real service take
        # longer still: a kill lands mid-stream far more often than in a round's last instant.
        emulator: dict[str, Any] = {"length": 600, "decode_rate": 300}

        def env(url: str) -> dict[str, str]:
            return {
                **os.environ,
                "ANTHROPIC_BASE_URL": url,
                "ANTHROPIC_API_KEY": "bench",
                "AUTOCONTINUE_HOME": str(scratch),
            }

        with run_emulator(**emulator) as url:
            clean_started = time.monotonic()
            subprocess.run(
                [*args, "-o", str(scratch / "clean.jsonl"), "--journal", str(scratch / "c.sqlite3")],
                env=env(url),
                check=True,
                timeout=600,
            )
            clean_s = time.monotonic() - clean_started
            clean_bill = _stats(url)
        # Each kill lands at a random moment of the work (not only in a process's first second,
        # where no round has ended yet): up to a fifth of the uninterrupted batch's time after
        # the process's first call, so the kills spread over the whole batch.
        latest = max(1.0, clean_s / 5)
        started = time.monotonic()
        done_kills = 0
        with run_emulator(**emulator) as url:
            command = [*args, "-o", str(scratch / "out.jsonl"), "--journal", str(scratch / "j.sqlite3")]
            for _ in range(kills):
                before = _stats(url)["requests"]
                process = subprocess.Popen(command, env=env(url))
                while _stats(url)["requests"] == before and process.poll() is None:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.05, latest))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    done_kills += 1
                process.wait()
            final = subprocess.run(command, env=env(url), timeout=600)
            bill = _stats(url)
        elapsed = time.monotonic() - started

        def lines(name: str) -> list[dict[str, Any]]:
            rows = [json.loads(line) for line in (scratch / name).read_text().splitlines()]
            return sorted(
                ({k: r[k] for k in ("id", "text", "stop_reason", "rounds", "error")} for r in rows),
                key=lambda r: r["id"],
            )

        got, want = lines("out.jsonl"), lines("clean.jsonl")
        rounds = sum(r["rounds"] for r in got)

        def tokens(name: str) -> dict[str, tuple[int, int, int]]:
            rows = [json.loads(line) for line in (scratch / name).read_text().splitlines()]
            return {
                r["id"]: tuple(
                    r["usage"].get(k, 0) for k in ("input_tokens", "output_tokens", "thinking_tokens")
                )
                for r in rows
            }

        # Input, output and thinking tokens per item (the cache split may differ: a call cut by a
        # kill wrote no cache, so the resumed call writes what the uninterrupted one read).
        got_tokens, want_tokens = tokens("out.jsonl"), tokens("clean.jsonl")
        same_usage = sum(got_tokens.get(k) == v for k, v in want_tokens.items())
    billed = bill["requests"] - bill["errors"]
    return {
        "items": n,
        "kills": done_kills,
        "exit_code": final.returncode,
        "identical_output": got == want,
        "same_usage_items": same_usage,
        "kill_window_s": [0.05, round(latest, 2)],
        "clean_seconds": round(clean_s, 1),
        "rounds": rounds,
        "billed_calls": billed,
        "clean_billed_calls": clean_bill["requests"] - clean_bill["errors"],
        "lost_calls": billed - rounds,
        "billed_output_tokens": bill["output_tokens"],
        "clean_output_tokens": clean_bill["output_tokens"],
        "seconds_with_kills": round(elapsed, 1),
    }


def _batches_stats(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + "/emulator/batches") as response:
        return dict(json.load(response))


def _batches_configure(url: str, **settings: Any) -> None:
    import urllib.request

    body = json.dumps(settings).encode()
    request = urllib.request.Request(url + "/emulator/batches", data=body, method="POST")
    request.add_header("content-type", "application/json")
    urllib.request.urlopen(request).read()


def crashes_via_batches(n: int, kills: int, seed: int = 7) -> dict[str, Any]:
    """Kill a ``--via batches`` CLI batch ``kills`` times (every other one in the create window)."""
    from autocontinue.emulator import run_emulator

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        source = scratch / "in.jsonl"
        source.write_text(
            "".join(json.dumps({"id": f"m{i}", "prompt": f"Write memo {i}"}) + "\n" for i in range(n))
        )
        args = [sys.executable, "-m", "autocontinue", "batch", str(source), "--via", "batches"]
        args += ["--model", MODEL, "--max-tokens-per-call", "300", "--poll-interval", "0.05", "-q"]
        env = {**os.environ, "ANTHROPIC_API_KEY": "bench", "AUTOCONTINUE_HOME": str(scratch)}

        def serve() -> Any:
            return run_emulator(length=600)  # 2 rounds an item

        with serve() as url:
            _batches_configure(url, processing_delay=0.5)  # a round's job runs half a second
            clean_cmd = [*args, "-o", str(scratch / "clean.jsonl"), "--journal", str(scratch / "c.sqlite3")]
            subprocess.run(clean_cmd, env={**env, "ANTHROPIC_BASE_URL": url}, check=True, timeout=600)
            clean = _batches_stats(url)
        done_kills = in_window = 0
        with serve() as url:
            _batches_configure(url, processing_delay=0.5)
            command = [*args, "-o", str(scratch / "out.jsonl"), "--journal", str(scratch / "j.sqlite3")]
            for k in range(kills):
                window = k % 2 == 0
                _batches_configure(url, create_delay=30.0 if window else 0.0)
                before = _batches_stats(url)["batches"]
                process = subprocess.Popen(command, env={**env, "ANTHROPIC_BASE_URL": url})
                while _batches_stats(url)["batches"] == before and process.poll() is None:
                    time.sleep(0.01)
                if not window:
                    time.sleep(rng.uniform(0.0, 1.5))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    done_kills += 1
                    in_window += window
                process.wait()
                _batches_configure(url, create_delay=0.0)  # releases the response held for the dead
            final = subprocess.run(command, env={**env, "ANTHROPIC_BASE_URL": url}, timeout=600)
            bill = _batches_stats(url)

        def lines(name: str) -> list[dict[str, Any]]:
            rows = [json.loads(line) for line in (scratch / name).read_text().splitlines()]
            return sorted(
                ({k: r[k] for k in ("id", "text", "stop_reason", "rounds", "error")} for r in rows),
                key=lambda r: r["id"],
            )

        identical = lines("out.jsonl") == lines("clean.jsonl")
    return {
        "items": n,
        "kills": done_kills,
        "kills_in_create_window": in_window,
        "exit_code": final.returncode,
        "identical_output": identical,
        "billed_requests": sum(bill["billed"].values()),
        "clean_billed_requests": sum(clean["billed"].values()),
        "billed_more_than_once": sorted(k for k, v in bill["billed"].items() if v > 1),
        "service_jobs": bill["batches"],
        "clean_service_jobs": clean["batches"],
    }


PARTS = ("throughput", "cost", "crashes", "batches_crashes")


def run(
    quick: bool = False, only: tuple[str, ...] = PARTS, earlier: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Measure the ``only`` parts; the others are kept from ``earlier`` (a saved run)."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    started = time.monotonic()
    sized: dict[str, Any] = {
        # 1,000 items of mixed length (about 2,000 calls, 250,000 output tokens). The limits
        # are about a third of what the client here manages unlimited on a quiet machine (35
        # calls, 3,500 tokens a second), so the limit binds, not the CPU; each run's bound is
        # 75-110 s past the first minute's bucket.
        "throughput": lambda: [
            throughput("output", 1000, 90_000, 64),
            throughput("requests", 1000, 900, 64),
        ],
        "cost": lambda: cost(2, 16, 200_000),
        "crashes": lambda: crashes(200, 10),  # 10 kills during a 200-item batch, as issue 12 asks
        "batches_crashes": lambda: crashes_via_batches(200, 10),
    }
    if quick:
        sized = {
            "throughput": lambda: [throughput("output", 12, 2_000, 8)],
            "cost": lambda: cost(1, 2, 3_000),
            "crashes": lambda: crashes(8, 2),
            "batches_crashes": lambda: crashes_via_batches(8, 2),
        }
    data: dict[str, Any] = dict(earlier or {})
    data.pop("machine", None)
    for part in only:
        part_started = time.monotonic()
        data[part] = sized[part]()
        data.setdefault("part_seconds", {})[part] = round(time.monotonic() - part_started, 1)
    data["command"] = "python -m bench.batch" + (" --quick" if quick else "")
    data["seconds"] = round(sum(data.get("part_seconds", {}).values()) or time.monotonic() - started, 1)
    return data


def report_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The docs/benchmarks.md section (called by bench/report.py)."""
    out.append("## 9. Batches: rate limits, Message Batches, kill -9\n")
    if not data:
        out.append("Not measured in this run (no bench/out/batch.json; `python -m bench.batch`).\n")
        return
    out.append(f"`bench/batch.py` (command: `{data['command']}`, {data['seconds']} s in all).\n")
    out.append("| limit | items | calls | 429s | wall time | bound | throughput / the bound's |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for t in data["throughput"]:
        unit = "output tokens/min" if t["kind"] == "output" else "requests/min"
        out.append(
            f"| {t['limit_per_minute']:,} {unit} | {t['items']} | {t['calls']} | {t['throttled']} "
            f"({t['throttled_share']:.1%}) | {t['seconds']} s | {t['bound_s']} s | {t['bound_share']:.1%} |"
        )
    out.append("")
    out.append(
        "The bound is the shortest time the limit allows: the bucket starts full (a minute's worth), "
        "then refills at the limit, so it is (total - one minute's worth) / rate. The items: prompts of "
        "3 to 183 words, 1 to 3 rounds of 50 to 200 output tokens each (some end on their own before "
        "their last round); the clock starts when the emulator is up and the SDK imported. The pacer "
        "compares the service's remaining output net of what the calls in flight will still write "
        "(the service takes a call's output when it completes); before that fix, slow calls overshot "
        "into 429s and the batch reached 60% of the bound.\n"
    )
    for t in data["throughput"]:
        met = t["bound_share"] >= TARGET_THROUGHPUT and t["throttled_share"] < TARGET_THROTTLED
        out.append(
            f"- Batch throughput under the {t['kind']} limit: {t['bound_share']:.1%} of the bound, "
            f"{t['throttled_share']:.1%} of calls refused (target >= 90%, 429s < 2%): {'met' if met else 'missed'}."
        )
    c = data["cost"]
    out.append("")
    out.append(f"Cost on {c['model']} (emulator bill), live against `--via batches`:\n")
    out.append(
        "| items | answer tokens | live calls | live $ | batches calls | batches $ | ratio | same text |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for key in ("long", "short"):
        r = c[key]
        out.append(
            f"| {r['items']} | {r['answer_tokens']:,} | {r['live']['calls']} | {r['live']['cost_usd']:.4f} | "
            f"{r['batches']['calls']} | {r['batches']['cost_usd']:.4f} | {r['ratio']:.3f}x | "
            f"{'yes' if r['same_text'] else 'no'} |"
        )
    out.append("")
    out.append(
        f"- Cost via Message Batches against live: {c['ratio']:.3f}x (target <= 0.5x): "
        f"{'met' if c['ratio'] <= TARGET_COST else 'missed'}."
    )
    k = data["crashes"]
    out.append(
        f"- kill -9 {k['kills']} times during a {k['items']}-item batch, then rerun: output "
        f"{'identical to' if k['identical_output'] else 'DIFFERENT from'} the uninterrupted batch (target "
        f"identical): {'met' if k['identical_output'] else 'missed'} (id, text, stop reason, rounds, error; "
        f"input, output and thinking tokens the same on {k.get('same_usage_items', '?')} of {k['items']} items); "
        f"{k['billed_calls']} calls billed for {k['rounds']} landed rounds: {k['lost_calls']} billed twice."
    )
    out.append("")
    out.append(
        "What the kill part measures: billed calls are the emulator's completed calls (requests - errors; "
        "a call cut off mid-stream by the kill is an error and is not billed), landed rounds those in the "
        "final output; billed - landed are calls the service finished whose end the killed process had not "
        "journaled yet (their last events were on their way to it, or the round was being recorded), so "
        "the rerun sent them again. A live call has no idempotency key: this window is narrow, not closed; "
        "through Message Batches it is closed (below).\n"
    )
    b = data.get("batches_crashes")
    if not b:
        out.append("Kills through Message Batches: not measured in this run (`--only batches_crashes`).\n")
        return
    same = b["identical_output"] and not b["billed_more_than_once"]
    out.append(
        f"- `--via batches`, kill -9 {b['kills']} times during a {b['items']}-item batch "
        f"({b['kills_in_create_window']} of them between the service accepting a round's job and the journal "
        f"learning its id), then rerun: output {'identical to' if b['identical_output'] else 'DIFFERENT from'} "
        f"the uninterrupted batch; {len(b['billed_more_than_once'])} requests billed more than once "
        f"({b['billed_requests']} billed, {b['clean_billed_requests']} uninterrupted); {b['service_jobs']} "
        f"service jobs ({b['clean_service_jobs']} uninterrupted): {'met' if same else 'missed'}.\n"
    )
    out.append(
        "Through Message Batches each round's job is journaled as an intent before the create call; a "
        "resumed batch collects a job still running, and looks for an intent's job on the service (its "
        "batches since the intent with as many requests, confirmed by their results' custom ids) instead "
        "of sending the round again. The kills in the window are placed there: the emulator holds the "
        "create's response (`create_delay`) and the process is killed once the job exists.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", help="some of: " + ",".join(PARTS) + " (the others are kept from bench/out)"
    )
    args = parser.parse_args(argv)
    from . import common

    if args.quick and common.out_dir() == common.OUT:
        common.set_out_dir(common.OUT / "quick")  # a smoke run never replaces the saved figures
    only = tuple(p.strip() for p in args.only.split(",")) if args.only else PARTS
    unknown = set(only) - set(PARTS)
    if unknown:
        parser.error(f"unknown part {sorted(unknown)[0]!r}")
    data = run(quick=args.quick, only=only, earlier=common.load("batch") if args.only else None)
    common.save("batch", data)
    print(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
