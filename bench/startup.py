"""Start-up time of the command line (issue 13 item 6): ``autocontinue --help`` under 100 ms.

Each command runs ``--repeat`` times as a fresh process; the page reports the median and the
best, beside the interpreter's own start (``python -c pass``, the floor no command can beat)
and what ``--help`` imports. Also timed: a missing API key (``autocontinue hello --backend
anthropic`` without ``ANTHROPIC_API_KEY``), which must be refused before the SDK is imported.
The machine is shared, so the load average is printed with the figures.

Run: ``python -m bench.startup`` (``--repeat N``, ``--json``). Writes bench/out/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["time_command", "help_imports", "run", "markdown"]

OUT = Path(__file__).resolve().parent / "out" / "startup.json"
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
    """Wall times (ms) of ``repeat`` fresh runs of ``argv``: median, best, exit code."""
    times, code = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
        code = done.returncode
    return {"argv": argv, "median_ms": statistics.median(times), "best_ms": min(times), "exit_code": code}


def help_imports() -> list[str]:
    """The autocontinue (and heavy third-party) modules ``autocontinue --help`` imports."""
    done = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=60)
    return done.stderr.split()


def run(repeat: int = 15) -> dict[str, Any]:
    no_key = _env(ANTHROPIC_API_KEY=None, ANTHROPIC_AUTH_TOKEN=None, ANTHROPIC_BASE_URL=None)
    cli = _console_script()
    results = {
        "interpreter": time_command([sys.executable, "-c", "pass"], repeat=repeat),
        "help": time_command([*cli, "--help"], repeat=repeat),
        "help_module": time_command([sys.executable, "-m", "autocontinue", "--help"], repeat=repeat),
        "missing_key": time_command([*cli, "hello there", "--backend", "anthropic"], repeat=repeat, env=no_key),
    }
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
    lines = [
        "| command | median | best | above the interpreter (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, row in rows:
        extra = "-" if row is r["interpreter"] else f"{row['median_ms'] - floor:.0f} ms"
        lines.append(f"| {label} | {row['median_ms']:.0f} ms | {row['best_ms']:.0f} ms | {extra} |")
    verdict = "met" if r["help"]["median_ms"] < TARGET_MS else "missed"
    heavy = [m for m in data["help_imports"] if not m.startswith("autocontinue")]
    lines.append("")
    lines.append(
        f"- `autocontinue --help`: **{r['help']['median_ms']:.0f} ms** median, {r['help']['best_ms']:.0f} ms best "
        f"(target < {TARGET_MS:.0f} ms: {verdict}); the interpreter alone takes {floor:.0f} ms. "
        f"Measured {data['measured']}, {data['repeat']} runs each, {data['cpus']} CPUs, "
        f"1-minute load average {data['load_average']:.2f}."
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
    args = parser.parse_args(argv)
    data = run(repeat=args.repeat)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(json.dumps(data, indent=2) if args.json else markdown(data))


if __name__ == "__main__":
    main()
