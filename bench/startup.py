"""Start-up time of the command line (issue 13 item 6): ``autocontinue --help`` under 100 ms.

Each command runs ``--repeat`` times as a fresh process; the page reports the median and the
best, beside the interpreter's own start (``python -c pass``, the floor no command can beat)
and what ``--help`` imports. Also timed: a missing API key (``autocontinue hello --backend
anthropic`` without ``ANTHROPIC_API_KEY``), which must be refused before the SDK is imported.
The machine is shared, so the load average is printed with the figures.

Run: ``python -m bench.startup`` (``--repeat N``, ``--json``). Writes bench/out/startup.json (the page's section 10).
``--baseline-src DIR`` also times the same commands with ``PYTHONPATH=DIR`` (e.g. the ``src`` of
an older checkout), interleaved run by run so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["time_command", "help_imports", "run", "markdown"]

TARGET_MS = 100.0

_IMPORTS = (
    "import sys; from autocontinue.cli import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
    "('autocontinue', 'anthropic', 'httpx', 'starlette', 'uvicorn', 'llama_cpp', 'rich', 'sqlite3'))), file=sys.stderr)"
)


def _console_script() -> list[str]:
    """``autocontinue`` from this interpreter's scripts directory, else ``python -m autocontinue``."""
    script = Path(sys.executable).parent / "autocontinue"
    return [str(script)] if script.exists() else [sys.executable, "-m", "autocontinue"]


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def time_command(argv: list[str], *, repeat: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall and CPU times (ms) of ``repeat`` fresh runs of ``argv``: medians, bests, exit code.

    CPU time (user + system of the child) moves far less with the machine's load than wall time.
    """
    times, cpu, code = [], [], None
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
        code = done.returncode
    return {
        "argv": argv,
        "median_ms": statistics.median(times),
        "best_ms": min(times),
        "cpu_median_ms": statistics.median(cpu),
        "cpu_best_ms": min(cpu),
        "exit_code": code,
    }


def _merge(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One command's single-run samples as medians and bests."""
    wall = [s["median_ms"] for s in samples]
    cpu = [s["cpu_median_ms"] for s in samples]
    return {
        "argv": samples[0]["argv"],
        "median_ms": statistics.median(wall),
        "best_ms": min(wall),
        "cpu_median_ms": statistics.median(cpu),
        "cpu_best_ms": min(cpu),
        "exit_code": samples[-1]["exit_code"],
    }


def help_imports() -> list[str]:
    """The autocontinue (and heavy third-party) modules ``autocontinue --help`` imports."""
    done = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=60)
    return done.stderr.split()


def run(repeat: int = 15, baseline_src: str | None = None) -> dict[str, Any]:
    no_key = _env(ANTHROPIC_API_KEY=None, ANTHROPIC_AUTH_TOKEN=None, ANTHROPIC_BASE_URL=None)
    cli = _console_script()
    module = [sys.executable, "-m", "autocontinue"]
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "interpreter": ([sys.executable, "-c", "pass"], None),
        "help": ([*cli, "--help"], None),
        "help_module": ([*module, "--help"], None),
        "missing_key": ([*cli, "hello there", "--backend", "anthropic"], no_key),
    }
    if baseline_src:
        commands["baseline_help"] = ([*module, "--help"], _env(PYTHONPATH=baseline_src))
        commands["baseline_missing_key"] = (
            [*module, "hello there", "--backend", "anthropic"],
            {**no_key, "PYTHONPATH": baseline_src},
        )
    rounds = [
        {name: time_command(argv, repeat=1, env=env) for name, (argv, env) in commands.items()}
        for _ in range(repeat)
    ]
    results = {name: _merge([r[name] for r in rounds]) for name in commands}
    return {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "repeat": repeat,
        "results": results,
        "help_imports": help_imports(),
    }


def markdown(data: dict[str, Any]) -> str:
    r = data["results"]
    floor = r["interpreter"]["median_ms"]
    rows = [
        ("`python -c pass` (the interpreter alone)", r["interpreter"]),
        ("`autocontinue --help`", r["help"]),
        ("`python -m autocontinue --help`", r["help_module"]),
        ("`autocontinue hello --backend anthropic`, no key (exit 2)", r["missing_key"]),
    ]
    if "baseline_help" in r:
        rows += [
            ("before: `python -m autocontinue --help`", r["baseline_help"]),
            ("before: no key (exit 2)", r["baseline_missing_key"]),
        ]
    cpu_floor = r["interpreter"]["cpu_median_ms"]
    lines = [
        "| command | wall median | wall best | CPU median | CPU best | CPU above the interpreter |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, row in rows:
        extra = "-" if row is r["interpreter"] else f"{row['cpu_median_ms'] - cpu_floor:.0f} ms"
        lines.append(
            f"| {label} | {row['median_ms']:.0f} ms | {row['best_ms']:.0f} ms | "
            f"{row['cpu_median_ms']:.0f} ms | {row['cpu_best_ms']:.0f} ms | {extra} |"
        )
    verdict = "met" if r["help"]["median_ms"] < TARGET_MS else "missed"
    cpu_verdict = "met" if r["help"]["cpu_median_ms"] < TARGET_MS else "missed"
    heavy = [m for m in data["help_imports"] if not m.startswith("autocontinue")]
    lines.append("")
    lines.append(
        f"- `autocontinue --help`: **{r['help']['median_ms']:.0f} ms** median, {r['help']['best_ms']:.0f} ms best "
        f"(target < {TARGET_MS:.0f} ms: {verdict}); the interpreter alone takes {floor:.0f} ms. "
        f"Measured {data['measured']}, {data['repeat']} runs each, {data['cpus']} CPUs, "
        f"1-minute load average {data['load_average']:.2f}. Its CPU time, which moves little with the load: "
        f"**{r['help']['cpu_median_ms']:.0f} ms** median (target < {TARGET_MS:.0f} ms: {cpu_verdict}), of which "
        f"the interpreter's own start is {cpu_floor:.0f} ms."
    )
    lines.append(
        f"- `--help` imports {len([m for m in data['help_imports'] if m.startswith('autocontinue')])} autocontinue "
        f"modules and {', '.join(heavy) or 'none'} of sqlite3/rich/httpx/anthropic/starlette/uvicorn/llama_cpp."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the markdown")
    parser.add_argument("--baseline-src", metavar="DIR", help="also time PYTHONPATH=DIR (an older src/)")
    args = parser.parse_args(argv)
    data = run(repeat=args.repeat, baseline_src=args.baseline_src)
    from .common import save

    save("startup", data)
    print(json.dumps(data, indent=2) if args.json else markdown(data))


if __name__ == "__main__":
    main()
