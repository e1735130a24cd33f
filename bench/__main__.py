"""``python -m bench``: run every benchmark, write bench/out/*.json, rewrite docs/benchmarks.md.

python -m bench                      # everything, from scratch
python -m bench --quick              # tiny sizes: a smoke run, into bench/out/quick/ (docs untouched)
python -m bench --only cost,speed    # some parts (then the page is rewritten from all JSON)
python -m bench --report-only        # only rewrite the page and plots from bench/out/
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

PARTS = (
    "cost",
    "cost_today",
    "speed",
    "length",
    "engine",
    "local_kv",
    "emulator",
    "seams",
    "openai",
    "batch",
    "local_batch",
    "startup",
    "soak",
)


def _runners(quick: bool) -> dict[str, Callable[[], Any]]:
    from . import (
        batch,
        cost,
        engine_overhead,
        folded,
        length,
        local_batch,
        openai_rounds,
        soak,
        speed,
        startup,
    )

    return {
        "cost": lambda: cost.run(sizes=(20_000,) if quick else cost.SIZES),
        "cost_today": lambda: cost.run_today(
            sizes=(20_000,) if quick else cost.TODAY_SIZES,
            effort="low",
            thinking_size=12_000 if quick else 40_000,
        ),
        "speed": lambda: speed.run(quick=quick),
        "length": lambda: length.run(quick=quick),
        "engine": lambda: engine_overhead.run(quick=quick),
        "local_kv": lambda: folded.local_kv(quick=quick),
        "emulator": lambda: folded.emulator_throughput(quick=quick),
        "seams": lambda: folded.seams_join(quick=quick),
        "openai": lambda: openai_rounds.main(
            ["--tokens", "80", "--rounds", "4", "--repeat", "1"] if quick else []
        ),
        "batch": lambda: batch.main(["--quick"] if quick else []),
        "local_batch": lambda: local_batch.main(
            ["--items", "2", "--rounds", "2", "--per-call", "16", "--repeat", "1"] if quick else []
        ),
        "startup": lambda: startup.main(["--repeat", "3" if quick else "15"]),
        "soak": lambda: soak.main(["--quick"] if quick else []),
    }


def _parts(text: str | None) -> list[str]:
    if not text:
        return list(PARTS)
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        print(f"bench: unknown part {unknown[0]!r} (choose from {', '.join(PARTS)})", file=sys.stderr)
        raise SystemExit(2)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--only", help="comma-separated parts: " + ",".join(PARTS))
    parser.add_argument("--report-only", action="store_true", help="only rewrite the page from bench/out/")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--out", help="results directory (default bench/out, or bench/out/quick with --quick)"
    )
    args = parser.parse_args(argv)
    from . import common

    common.set_out_dir(args.out or (common.OUT / "quick" if args.quick else common.OUT))
    out = common.out_dir()
    page = out / "benchmarks.md" if (args.quick or args.out) else None
    parts = [] if args.report_only else _parts(args.only)
    runners = _runners(args.quick)
    failed = []
    for part in parts:
        print(f"[bench] {part} ...", flush=True)
        started = time.perf_counter()
        try:
            runners[part]()
        except Exception as exc:  # keep going: the page says what was not measured
            failed.append(part)
            print(f"[bench] {part} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        print(f"[bench] {part} done in {time.perf_counter() - started:.0f} s", flush=True)
    if not args.no_report:
        from . import report

        print(f"[bench] wrote {report.write(page) if page else report.write()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
