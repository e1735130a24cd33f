"""Run the benches other parts of the project own, each in its own process, and keep their dicts.

- ``bench/local_kv.py`` (local backend): writes and prints a JSON dict;
- ``bench/emulator_throughput.py`` (emulator): prints one dict (Python repr);
- ``bench/seams_join.py`` (seams): prints a JSON dict.

A missing or failing script is recorded, not raised: the page then says it was not measured.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

from .common import REPO, out_dir, save

__all__ = ["local_kv", "emulator_throughput", "seams_join"]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _last_dict(stdout: str) -> dict[str, Any]:
    """The dict a script printed last: JSON (possibly indented) or a Python literal."""
    text = stdout.strip()
    start = text.rfind("\n{") + 1 if "\n{" in text else text.find("{")
    for candidate in (text[start:], text):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(candidate)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, dict):
                return value
    raise ValueError(f"no dict in the output: {text[-300:]!r}")


def _script(name: str) -> bool:
    return (REPO / "bench" / f"{name}.py").exists()


def local_kv(*, quick: bool = False, log: Any = print) -> dict[str, Any] | None:
    if not _script("local_kv"):
        log("  bench/local_kv.py is missing: not measured")
        return None
    args = (
        ["--tokens", "128", "--rounds", "4", "--repeat", "1"]
        if quick
        else ["--tokens", "512", "--rounds", "8", "--repeat", "3"]
    )
    target = out_dir() / "local_kv.json"
    done = _run(["bench/local_kv.py", *args, "--out", str(target)], timeout=1800)
    if not target.exists():
        log(f"  local_kv failed: {done.stderr.strip()[-300:]}")
        return None
    data = json.loads(target.read_text())
    save("local_kv", data)
    log(
        f"  local KV: rounds with reuse {data['rounds_reuse']['ratio_to_uncapped']}x uncapped, "
        f"without {data['rounds_no_reuse']['ratio_to_uncapped']}x"
    )
    return data


def emulator_throughput(*, quick: bool = False, log: Any = print) -> dict[str, Any] | None:
    if not _script("emulator_throughput"):
        log("  bench/emulator_throughput.py is missing: not measured")
        return None
    size = ["--clients", "10", "--tokens", "1000"] if quick else ["--clients", "50", "--tokens", "8000"]
    runs: dict[str, Any] = {}
    for client in ("raw", "sdk"):
        done = _run(["bench/emulator_throughput.py", *size, "--client", client], timeout=900)
        try:
            runs[client] = _last_dict(done.stdout)
        except ValueError:
            runs[client] = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
        log(f"  emulator throughput ({client}): {runs[client]}")
    data = {"runs": runs}
    save("emulator_throughput", data)
    return data


def seams_join(*, quick: bool = False, log: Any = print) -> dict[str, Any] | None:
    if not _script("seams_join"):
        log("  bench/seams_join.py is missing: not measured")
        return None
    sizes = ["20000", "40000"] if quick else []
    done = _run(["-m", "bench.seams_join", *sizes], timeout=1200)
    try:
        data = _last_dict(done.stdout)
    except ValueError:
        log(f"  seams_join failed: {(done.stderr.strip().splitlines() or ['no output'])[-1][:200]}")
        return None
    data.pop("saved", None)
    save("seams_join", data)
    log(f"  seams join: exact={data.get('exact')}, spread {data.get('s_per_mb_spread')}")
    return data
