"""Benchmark: what KV-cache reuse saves when the local model writes one answer in K rounds.

The same N tokens are produced three ways by the embedded SmolLM2-135M model (greedy, so
every mode writes the same text):

* ``uncapped``: one call of N tokens;
* ``rounds_reuse``: K prefill rounds of N/K tokens, each continuing the answer so far (trailing
  whitespace stripped, as the engine sends it), with the KV cache reused;
* ``rounds_no_reuse``: the same K rounds, the cache dropped before each round so every prompt
  is evaluated from scratch;
* ``engine_reuse`` (when ``autocontinue.generate`` is there): the whole engine, K rounds.

Each mode starts from an empty cache; modes run interleaved, ``--repeat`` times, and the best
wall time is kept (other work on the shared machine only ever adds time; the median is shown
too), with CPU time beside it, which suffers less when the machine is busy. Target: ``rounds_reuse`` within 1.10x of
``uncapped``.

    python bench/local_kv.py [--tokens 512] [--rounds 8] [--repeat 3] [--threads N]

Prints one dict and writes it to bench/out/local_kv.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

QUESTION = [{"role": "user", "content": "Write a detailed essay about the history of Rome."}]


def one_round(backend, messages, max_tokens):
    from autocontinue.backends.base import BackendDelta, RoundRequest

    request = RoundRequest(model=backend.default_model, messages=messages, max_tokens=max_tokens)
    pieces, end = [], None
    for event in backend.stream_round(request):
        if isinstance(event, BackendDelta):
            pieces.append(event.text)
        else:
            end = event
    return "".join(pieces), end


def uncapped(backend, tokens):
    text, end = one_round(backend, QUESTION, tokens)
    return {
        "text": text,
        "output_tokens": end.usage.output_tokens,
        "rounds": 1,
        "evaluated_prompt_tokens": end.usage.evaluated_prompt_tokens,
        "reused_prompt_tokens": end.usage.reused_prompt_tokens,
    }


def in_rounds(backend, tokens, rounds, *, reuse):
    """K prefill rounds that together produce ``tokens`` tokens (fewer if the answer ends)."""
    per_round = -(-tokens // rounds)
    text, produced, evaluated, reused, made = "", 0, 0, 0, 0
    while produced < tokens:
        if not reuse:
            backend.forget_cache()
        messages = list(QUESTION)
        if text:
            text = text.rstrip()
            messages.append({"role": "assistant", "content": text})
        piece, end = one_round(backend, messages, min(per_round, tokens - produced))
        text += piece
        produced += end.usage.output_tokens
        evaluated += end.usage.evaluated_prompt_tokens
        reused += end.usage.reused_prompt_tokens
        made += 1
        if end.stop_reason != "max_tokens":
            break
    return {
        "text": text,
        "output_tokens": produced,
        "rounds": made,
        "evaluated_prompt_tokens": evaluated,
        "reused_prompt_tokens": reused,
    }


def through_engine(backend, tokens, rounds):
    import autocontinue

    result = autocontinue.generate(
        QUESTION,
        backend=backend,
        max_tokens_per_call=-(-tokens // rounds),
        max_rounds=rounds,
        max_output_tokens=tokens,
        temperature=0.0,
        strategy="prefill",
    )
    usage = result.usage
    return {
        "text": result.text,
        "output_tokens": usage.output_tokens,
        "rounds": len(result.rounds),
        "evaluated_prompt_tokens": usage.evaluated_prompt_tokens,
        "reused_prompt_tokens": usage.reused_prompt_tokens,
    }


def timed(backend, run):
    backend.forget_cache()
    started, cpu_started = time.perf_counter(), time.process_time()
    outcome = run()
    outcome["seconds"] = time.perf_counter() - started
    outcome["cpu_seconds"] = time.process_time() - cpu_started
    return outcome


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: idle cores)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "local_kv.json"))
    args = parser.parse_args(argv)

    from autocontinue.backends.local import LocalBackend, default_threads

    threads = args.threads or default_threads()
    backend = LocalBackend(temperature=0.0, n_threads=threads)
    backend.model_spec(backend.default_model)  # load the model outside the timings

    baseline = uncapped(backend, args.tokens)  # warm-up, and the N every mode must reach
    tokens = baseline["output_tokens"]
    modes = {
        "uncapped": lambda: uncapped(backend, tokens),
        "rounds_reuse": lambda: in_rounds(backend, tokens, args.rounds, reuse=True),
        "rounds_no_reuse": lambda: in_rounds(backend, tokens, args.rounds, reuse=False),
    }
    try:
        import autocontinue

        if hasattr(autocontinue, "generate"):
            modes["engine_reuse"] = lambda: through_engine(backend, tokens, args.rounds)
    except ImportError:
        pass

    runs: dict[str, list[dict]] = {name: [] for name in modes}
    for _ in range(args.repeat):
        for name, run in modes.items():
            runs[name].append(timed(backend, run))

    report: dict = {
        "model": backend.default_model,
        "threads": threads,
        "tokens": tokens,
        "rounds": args.rounds,
        "repeat": args.repeat,
    }
    base_seconds = min(r["seconds"] for r in runs["uncapped"])
    base_cpu = min(r["cpu_seconds"] for r in runs["uncapped"])
    for name, results in runs.items():
        last = results[-1]
        seconds = min(r["seconds"] for r in results)
        cpu = min(r["cpu_seconds"] for r in results)
        report[name] = {
            "seconds": round(seconds, 3),
            "median_seconds": round(statistics.median(r["seconds"] for r in results), 3),
            "ratio_to_uncapped": round(seconds / base_seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "cpu_ratio_to_uncapped": round(cpu / base_cpu, 3),
            "output_tokens": last["output_tokens"],
            "rounds": last["rounds"],
            "evaluated_prompt_tokens": last["evaluated_prompt_tokens"],
            "reused_prompt_tokens": last["reused_prompt_tokens"],
            "same_text_as_uncapped": last["text"] == runs["uncapped"][-1]["text"],
            "all_seconds": [round(r["seconds"], 3) for r in results],
        }
    report["target_ratio"] = 1.10
    report["target_met"] = report["rounds_reuse"]["ratio_to_uncapped"] <= 1.10
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["target_met"] else 1)
