"""Soak: seeded fault-and-quirk mixes, kill -9s of real CLI runs, malformed servers (loopback only).

    python -m bench.soak               # 12 mixes, 8 kills, 8 malformed-server runs, 2 give-ups (3-6 min)
    python -m bench.soak --quick       # one mix, one kill, one malformed server (bench/out/quick/)

Every run is compared with the same emulator configuration without faults (same seed, same
quirks, so the same fixed answer): a run is *identical* when its final text equals the
fault-free run's, *differing* otherwise. Four kinds:

* **mix**: the Python API through the official SDK (no SDK retries) on an emulator with seam
  quirks (echo, preamble, drop-space) and a 40% fault mix (529, 429, 500, dropped connections,
  in-stream errors);
* **kill**: the real CLI in a subprocess, killed with SIGKILL at a random moment, then
  ``autocontinue resume`` (again until it finishes);
* **malformed**: the Python API through a tiny loopback proxy in front of the emulator that, on
  a seeded 40% of streams, sends ``data: {garbage`` mid-stream, drops the connection, or ends
  the stream without ``message_stop``;
* **give-up**: a server that breaks every stream: the run must stop on its own (CLI exit 3,
  within the retry policy's bound), keeping its text.

The fault mixes are seeded random rolls per request (the emulator's and the proxy's), the same
for every policy: nothing is chosen to pass. The Python-API runs use ``RetryPolicy()`` with all
its times scaled by ``TIME_SCALE`` (the same give-up decision after the same failures).

Printed and saved (bench/out/soak.json): runs, identical to fault-free, differing, gave up
correctly, requests per 1,000 delivered tokens, the worst ratio of requests to the fault-free
run's (target: 100% identical, no run above 3x).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import http.client
import http.server
import json
import os
import random
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from .common import OUT, bill, emulator_client, save, set_out_dir

__all__ = ["run", "report_section", "main"]

MODEL = "claude-sonnet-4-6"
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
QUIRKS = "echo:0.3,preamble:0.3,drop-space:0.3"
#: 40% of requests get a fault; 429s ask for no wait so the soak stays short.
FAULTS = "529:0.1,429/0:0.05,500:0.05,drop:0.1,stream-error:0.1"
LENGTH = 1500
PER_CALL = 300
MAX_ROUNDS = 30
TARGET_RATIO = 3.0
#: A run that cannot progress must stop within this: the default policy gives up after 61 s of
#: backoff without progress, plus the SDK's own retries and the requests themselves.
GIVE_UP_SECONDS = 150


#: The Python-API runs use the default retry policy with every time in it scaled by this (the
#: same backoff shape and give-up decision after the same failures, without minutes of waiting).
TIME_SCALE = 0.01


def _retry() -> Any:
    from autocontinue import RetryPolicy

    default = RetryPolicy()
    return dataclasses.replace(
        default,
        base_delay=default.base_delay * TIME_SCALE,
        max_delay=default.max_delay * TIME_SCALE,
        give_up_after=default.give_up_after * TIME_SCALE,
    )


def _generate(client: Any) -> tuple[str, int, str]:
    """(text, output tokens, how it ended) of one Python-API run on ``client``."""
    import autocontinue

    try:
        result = autocontinue.generate(
            PROMPT,
            client=client,
            model=MODEL,
            max_tokens_per_call=PER_CALL,
            max_rounds=MAX_ROUNDS,
            retry=_retry(),
        )
    except autocontinue.AutocontinueError as exc:
        partial = getattr(exc.partial, "text", "") or ""
        return partial, 0, f"error: {type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - a raw exception is a finding, not a crash of the soak
        return "", 0, f"raw exception: {type(exc).__name__}: {exc}"[:200]
    return result.text, result.usage.output_tokens, result.stop_reason


def _reference(seed: int) -> dict[str, Any]:
    """The fault-free run for ``seed``: its text, tokens and requests."""
    with emulator_client(seed=seed, length=LENGTH, quirks=QUIRKS) as (client, url):
        text, tokens, stop = _generate(client)
        return {"text": text, "tokens": tokens, "requests": bill(url)["requests"], "stop": stop}


def _row(kind: str, seed: int, ref: dict[str, Any], text: str, requests: int, ended: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "seed": seed,
        "identical": text == ref["text"],
        "chars": len(text),
        "reference_chars": len(ref["text"]),
        "requests": requests,
        "reference_requests": ref["requests"],
        "ratio": round(requests / max(1, ref["requests"]), 2),
        "delivered_tokens": ref["tokens"] if text == ref["text"] else 0,
        "ended": ended,
    }


# ----------------------------------------------------------------------------- mixes


def mix_run(seed: int, ref: dict[str, Any]) -> dict[str, Any]:
    with emulator_client(seed=seed, length=LENGTH, quirks=QUIRKS, faults=FAULTS) as (client, url):
        text, _, ended = _generate(client)
        return _row("mix", seed, ref, text, bill(url)["requests"], ended)


# ----------------------------------------------------------------------------- kill -9 and resume


def _cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "autocontinue", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _cli_env(url: str, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="soak", AUTOCONTINUE_HOME=home)
    return env


def _cli_run_args() -> list[str]:
    return [PROMPT, "--model", MODEL, "--max-tokens-per-call", str(PER_CALL), "--max-rounds", str(MAX_ROUNDS)]


def _wait_for_requests(url: str, process: subprocess.Popen[str], deadline: float) -> None:
    """Until the run's first request reached the emulator (or it ended, or the deadline)."""
    while time.monotonic() < deadline and process.poll() is None and bill(url)["requests"] == 0:
        time.sleep(0.05)


def kill_run(seed: int, ref: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Start the CLI, SIGKILL it at a random moment of its run, resume until it finishes."""
    options = dict(seed=seed, length=LENGTH, quirks=QUIRKS, decode_rate=600.0)
    with emulator_client(**options) as (_, url), tempfile.TemporaryDirectory() as home:
        env = _cli_env(url, home)
        process = subprocess.Popen(
            [sys.executable, "-m", "autocontinue", *_cli_run_args(), "--json", "-q"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_requests(url, process, time.monotonic() + 120)
        time.sleep(rng.uniform(0.0, 2.5))  # the whole answer takes about 2.5 s at this decode rate
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
        text, ended, resumes, why = None, "finished before the kill", 0, ""
        if process.returncode == 0 and out.strip():
            text = json.loads(out)["text"]
        while text is None and resumes < 5:
            resumes += 1
            done = _cli(["resume", "--json", "-q"], env, timeout=300)
            if done.returncode == 0 and done.stdout.strip():
                text, ended = json.loads(done.stdout)["text"], f"killed, resumed x{resumes}"
            why = f"exit {done.returncode}: {done.stderr.strip()[:120]}"
        if text is None:
            text, ended = "", f"not resumed ({why})"
        return _row("kill", seed, ref, text, bill(url)["requests"], ended)


# ----------------------------------------------------------------------------- malformed servers


class _Counter:
    def __init__(self) -> None:
        self.requests = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests


def _proxy_handler(upstream: str, counter: _Counter, seed: int, rate: float) -> type:
    host, port = upstream.removeprefix("http://").split(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._forward(b"")

        def do_POST(self) -> None:
            self._forward(self.rfile.read(int(self.headers.get("content-length", 0))))

        def _forward(self, body: bytes) -> None:
            number = counter.next()
            roll = random.Random(f"{seed}:{number}")
            breakage = roll.choice(("garbage", "drop", "no-stop")) if roll.random() < rate else None
            connection = http.client.HTTPConnection(host, int(port), timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            # chunked, so that a drop (no terminating chunk) is a cut body, as a dying proxy
            # leaves it, and not the clean end a close-delimited body would make of it
            self.send_header("transfer-encoding", "chunked")
            self.send_header("connection", "close")
            self.end_headers()
            with contextlib.suppress(http.client.HTTPException, OSError):  # upstream dropped: drop too
                if self._relay(response, breakage):
                    self.wfile.write(b"0\r\n\r\n")  # the body ends cleanly
            self.wfile.flush()
            connection.close()
            self.close_connection = True

        def _relay(self, response: http.client.HTTPResponse, breakage: str | None) -> bool:
            """Relay the body (maybe broken); False for a drop: the body must stay unterminated."""
            events = 0
            for line in _lines(response):
                if breakage == "no-stop" and line.startswith(b"event: message_stop"):
                    break
                self._chunk(line)
                if line == b"\n":
                    events += 1
                    if events == 6 and breakage == "garbage":
                        self._chunk(b"event: content_block_delta\ndata: {garbage\n\n")
                        break
                    if events == 6 and breakage == "drop":
                        return False
            return True

        def _chunk(self, data: bytes) -> None:
            if data:  # an empty chunk would end the body
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    return Handler


def _lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body's lines; raises IncompleteRead on a cut chunked body (``for line in response``
    would just stop there, turning an upstream drop into a clean end)."""
    rest = b""
    while data := response.read1(65536):
        *lines, rest = (rest + data).split(b"\n")
        yield from (line + b"\n" for line in lines)
    if rest:
        yield rest


@contextlib.contextmanager
def malformed_proxy(upstream: str, seed: int, rate: float) -> Iterator[tuple[str, _Counter]]:
    """A loopback proxy to ``upstream`` that breaks a seeded ``rate`` of responses."""
    counter = _Counter()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _proxy_handler(upstream, counter, seed, rate))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counter
    finally:
        server.shutdown()
        server.server_close()


def malformed_run(seed: int, ref: dict[str, Any]) -> dict[str, Any]:
    import anthropic

    with (
        emulator_client(seed=seed, length=LENGTH, quirks=QUIRKS) as (_, url),
        malformed_proxy(url, seed, 0.4) as (proxy, counter),
    ):
        client = anthropic.Anthropic(base_url=proxy, api_key="soak", max_retries=0, timeout=60)
        text, _, ended = _generate(client)
        client.close()
        return _row("malformed", seed, ref, text, counter.requests, ended)


# ----------------------------------------------------------------------------- giving up


def give_up_run(seed: int, via: str) -> dict[str, Any]:
    """Every stream broken (dropped, or garbage through the proxy): the CLI must exit 3 in time."""
    faults = "drop:1" if via == "drop" else ""
    with (
        emulator_client(seed=seed, length=LENGTH, faults=faults) as (_, url),
        malformed_proxy(url, seed, 1.0 if via == "garbage" else 0.0) as (proxy, counter),
        tempfile.TemporaryDirectory() as home,
    ):
        started = time.monotonic()
        try:
            done = _cli(_cli_run_args(), _cli_env(proxy, home), timeout=GIVE_UP_SECONDS)
            code, err = done.returncode, done.stderr.strip().splitlines()
        except subprocess.TimeoutExpired:
            code, err = None, [f"did not stop within {GIVE_UP_SECONDS} s"]
        seconds = round(time.monotonic() - started, 1)
    correct = code == 3 and len(err) >= 1 and "Traceback" not in "\n".join(err)
    return {
        "kind": f"give-up ({via})",
        "seed": seed,
        "gave_up_correctly": correct,
        "exit_code": code,
        "requests": counter.requests,
        "seconds": seconds,
        "last_line": err[-1][:160] if err else "",
    }


# ----------------------------------------------------------------------------- the whole soak


def run(
    mixes: int = 12, kills: int = 8, malformed: int = 8, give_ups: int = 2, seed: int = 0
) -> dict[str, Any]:
    """Run the soak (bounded: every run has its own timeout) and save bench/out/soak.json."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    rng = random.Random(seed)
    started = time.monotonic()
    load_before = round(os.getloadavg()[0], 2)
    references: dict[int, dict[str, Any]] = {}

    def ref(s: int) -> dict[str, Any]:
        if s not in references:
            references[s] = _reference(s)
        return references[s]

    # The give-ups mostly wait out the CLI's default backoff (about a minute each): they run in
    # threads beside the compared runs instead of after them.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, give_ups))
    waiting = [pool.submit(give_up_run, seed + i, ("drop", "garbage")[i % 2]) for i in range(give_ups)]
    rows: list[dict[str, Any]] = []
    for i in range(mixes):
        rows.append(mix_run(seed + i, ref(seed + i)))
        _log(rows[-1])
    for i in range(kills):
        rows.append(kill_run(seed + i, ref(seed + i), rng))
        _log(rows[-1])
    for i in range(malformed):
        rows.append(malformed_run(seed + i, ref(seed + i)))
        _log(rows[-1])
    give_up_rows = [future.result() for future in waiting]
    pool.shutdown()
    for row in give_up_rows:
        _log(row)
    data = {
        "command": _command(mixes, kills, malformed, give_ups, seed),
        "seconds": round(time.monotonic() - started, 1),
        "load_avg_1m_before": load_before,
        "time_scale": TIME_SCALE,
        "config": {
            "model": MODEL,
            "length": LENGTH,
            "per_call": PER_CALL,
            "quirks": QUIRKS,
            "faults": FAULTS,
        },
        "summary": summarise(rows, give_up_rows),
        "runs": rows,
        "give_ups": give_up_rows,
    }
    save("soak", data)
    return data


def summarise(rows: list[dict[str, Any]], give_ups: list[dict[str, Any]]) -> dict[str, Any]:
    identical = [r for r in rows if r["identical"]]
    delivered = sum(r["delivered_tokens"] for r in rows)
    return {
        "runs": len(rows) + len(give_ups),
        "compared": len(rows),
        "identical": len(identical),
        "differing": len(rows) - len(identical),
        "gave_up_correctly": sum(1 for g in give_ups if g["gave_up_correctly"]),
        "give_ups": len(give_ups),
        "requests": sum(r["requests"] for r in rows),
        "requests_per_1k_delivered_tokens": round(
            1000 * sum(r["requests"] for r in identical) / max(1, delivered), 2
        ),
        "fault_free_requests_per_1k_tokens": round(
            1000 * sum(r["reference_requests"] for r in identical) / max(1, delivered), 2
        ),
        "worst_ratio": max((r["ratio"] for r in rows), default=0.0),
        "over_target": [f"{r['kind']} seed {r['seed']}" for r in rows if r["ratio"] > TARGET_RATIO],
    }


def _command(mixes: int, kills: int, malformed: int, give_ups: int, seed: int) -> str:
    if (mixes, kills, malformed, give_ups, seed) == (12, 8, 8, 2, 0):
        return "python -m bench.soak"
    return f"python -m bench.soak --mixes {mixes} --kills {kills} --malformed {malformed} --give-ups {give_ups} --seed {seed}"


def _log(row: dict[str, Any]) -> None:
    if "identical" in row:
        verdict = (
            "identical" if row["identical"] else f"DIFFERS ({row['chars']} vs {row['reference_chars']} chars)"
        )
        print(
            f"soak: {row['kind']:<9} seed {row['seed']:>2}: {verdict}, {row['requests']} requests "
            f"({row['ratio']}x fault-free), {row['ended']}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            f"soak: {row['kind']} seed {row['seed']}: exit {row['exit_code']} after {row['requests']} requests "
            f"in {row['seconds']} s: {row['last_line']}",
            file=sys.stderr,
            flush=True,
        )


def report_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The docs/benchmarks.md section for the soak (nothing when it has not been run)."""
    if not data:
        return
    s = data["summary"]
    out.append("## Soak: faults, seam quirks, kill -9 and malformed servers\n")
    out.append(f"```sh\n{data['command']}\n```\n")
    out.append(
        f"{s['runs']} runs in {data['seconds']} s on the emulator ({data['config']['length']} tokens, "
        f"{data['config']['per_call']} per call, quirks `{data['config']['quirks']}`): seeded fault mixes "
        f"(`{data['config']['faults']}`), SIGKILLed CLI runs then `autocontinue resume`, a loopback proxy "
        "that breaks 40% of streams (garbage JSON, dropped connections, no `message_stop`), and servers "
        "that break every stream.\n"
    )
    machine = data.get("machine") or {}
    if "load_avg_1m_before" in data:
        out.append(
            f"_Measured {machine.get('date', '?')} on {machine.get('cpus', '?')} cores, 1-minute load "
            f"{data['load_avg_1m_before']} at the start and {machine.get('load_avg_1m', '?')} at the end; "
            "the Python-API runs use the default retry policy with every time scaled by "
            f"{data.get('time_scale', TIME_SCALE)}, the CLI runs the default policy itself (the give-ups "
            "wait out its 61 s of backoff, in threads beside the other runs)._\n"
        )
    pct = 100 * s["identical"] / max(1, s["compared"])
    all_same = s["identical"] == s["compared"]
    within = s["worst_ratio"] <= TARGET_RATIO
    out.append(
        f"- Soak: identical to the fault-free run **{s['identical']} of {s['compared']}** ({pct:.0f}%) "
        f"(target 100%: {'met' if all_same else 'missed'})"
    )
    out.append(
        f"- Soak: worst run **{s['worst_ratio']}x** the fault-free request count "
        f"(target at most {TARGET_RATIO:g}x: {'met' if within else 'missed'})"
    )
    out.append(f"- Differing: {s['differing']}")
    for r in data["runs"]:
        if not r["identical"]:
            out.append(
                f"  - {r['kind']} seed {r['seed']}: {r['ended']} after {r['requests']} requests, "
                f"{r['chars']} of {r['reference_chars']} characters"
            )
    out.append(f"- Gave up correctly (exit 3, in bounded time): {s['gave_up_correctly']} of {s['give_ups']}")
    out.append(
        f"- Requests per 1,000 delivered tokens: {s['requests_per_1k_delivered_tokens']} "
        f"(fault-free: {s['fault_free_requests_per_1k_tokens']})"
    )
    out.append("")
    out.append("| kind | seed | identical | requests | fault-free | ratio | ended |")
    out.append("|---|---|---|---|---|---|---|")
    for r in data["runs"]:
        out.append(
            f"| {r['kind']} | {r['seed']} | {'yes' if r['identical'] else 'NO'} | {r['requests']} | "
            f"{r['reference_requests']} | {r['ratio']}x | {r['ended']} |"
        )
    for g in data["give_ups"]:
        out.append(
            f"| {g['kind']} | {g['seed']} | - | {g['requests']} | - | - | exit {g['exit_code']} in {g['seconds']} s |"
        )
    out.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one mix, one kill, one malformed server")
    parser.add_argument("--mixes", type=int, default=12)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--malformed", type=int, default=8)
    parser.add_argument("--give-ups", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = (1, 1, 1, 0) if args.quick else (args.mixes, args.kills, args.malformed, args.give_ups)
    if args.quick:
        set_out_dir(OUT / "quick")
    mixes, kills, malformed, give_ups = sizes
    data = run(mixes, kills, malformed, give_ups, seed=args.seed)
    print(json.dumps(data["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
