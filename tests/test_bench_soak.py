"""bench/soak.py still runs, in its smallest size: one fault mix, one kill -9 then resume, one
malformed server, one server that never lets a run progress (~2 minutes on a loaded machine).

Real parts only: emulators over loopback HTTP, the official SDK, the real CLI in subprocesses,
the soak's own malformed-stream proxy. Its targets are the issue's: every compared run ends with
the fault-free text, within 3x the fault-free requests, and the hopeless run exits 3 on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ lives beside src/

pytest.importorskip("anthropic")

from bench import common, soak  # noqa: E402

pytestmark = pytest.mark.slow


def test_the_smallest_soak_meets_its_targets_and_renders_its_section(tmp_path):
    previous = common.out_dir()
    common.set_out_dir(tmp_path)
    try:
        data = soak.run(mixes=1, kills=1, malformed=1, give_ups=1)
    finally:
        common.set_out_dir(previous)
    summary = data["summary"]
    assert [r["kind"] for r in data["runs"]] == ["mix", "kill", "malformed"]
    assert summary["identical"] == summary["compared"] == 3, data["runs"]
    assert summary["worst_ratio"] <= soak.TARGET_RATIO and not summary["over_target"]
    assert summary["gave_up_correctly"] == 1, data["give_ups"]
    assert (tmp_path / "soak.json").exists()
    section: list[str] = []
    soak.report_section(section, data)
    assert any(
        "identical to the fault-free run **3 of 3** (100%) (target 100%: met)" in line for line in section
    )


def test_the_malformed_proxy_breaks_every_stream_when_told_to(emulator_url):
    import httpx2

    body = {
        "model": soak.MODEL,
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    seen = set()
    for seed in range(8):
        with soak.malformed_proxy(emulator_url, seed=seed, rate=1.0) as (proxy, counter):
            try:
                text = httpx2.post(
                    f"{proxy}/v1/messages", json=body, headers={"x-api-key": "t"}, timeout=30
                ).text
            except httpx2.RemoteProtocolError as exc:  # a drop cuts the body, as a dying proxy does
                assert "incomplete chunked read" in str(exc)
                seen.add("drop")
                continue
        assert counter.requests == 1
        assert "event: message_start" in text and "event: message_stop" not in text
        seen.add("garbage" if "data: {garbage" in text else "no-stop")
    assert seen == {"garbage", "drop", "no-stop"}
    direct = httpx2.post(
        f"{emulator_url}/v1/messages", json=body, headers={"x-api-key": "t"}, timeout=30
    ).text
    assert "event: message_stop" in direct


def test_the_proxy_passes_an_upstream_drop_on_as_a_cut_not_a_clean_end(start_emulator):
    import httpx2

    url = start_emulator(length=300, faults="drop@1")
    body = {
        "model": soak.MODEL,
        "max_tokens": 300,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with soak.malformed_proxy(url, seed=0, rate=0.0) as (proxy, _):
        with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
            httpx2.post(f"{proxy}/v1/messages", json=body, headers={"x-api-key": "t"}, timeout=30)
        clean = httpx2.post(f"{proxy}/v1/messages", json=body, headers={"x-api-key": "t"}, timeout=30)
    assert "event: message_stop" in clean.text  # request 2 is clean, and relayed whole
