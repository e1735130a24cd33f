"""The ``emulate`` command run as a real process: listening line, serving, Ctrl-C, bad values."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import anthropic
import pytest
from click.testing import CliRunner

from autocontinue.emulator.command import emulate

COMMAND = [sys.executable, "-m", "autocontinue.emulator"]


def start(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", *args], stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    line = process.stderr.readline()
    match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", line)
    if not match:
        process.kill()
        pytest.fail(f"unexpected first line {line!r}")
    return process, match.group(1)


def test_emulate_prints_the_listening_line_serves_and_stops_cleanly_on_ctrl_c():
    process, url = start(
        "--length", "50", "--model-spec", "mini:context=1000,max_output=40", "--quirks", "echo:0.5"
    )
    try:
        message = anthropic.Anthropic(base_url=url, api_key="test").messages.create(
            model="mini", max_tokens=40, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.usage.output_tokens == 40
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 130)
    assert "Traceback" not in err


def test_api_key_option_is_enforced():
    process, url = start("--api-key", "sekret")
    try:
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--quirks", "wobble:1"], "unknown quirk 'wobble'"),
        (["--faults", "529:2"], "must be between 0 and 1"),
        (["--length", "many"], "bad length 'many'"),
        (["--length", "0"], "bad length 0"),
        (["--seed", "x"], "bad seed"),
        (["--decode-rate", "-5"], "bad decode rate"),
        (["--rpm", "0"], "bad rpm"),
        (["--source", "corpus:/no/such/file"], "does not exist"),
        (["--source", "magic"], "unknown source 'magic'"),
        (["--model-spec", "mini:context=lots"], "bad model spec"),
        (["--port", "70000"], "bad port 70000"),
    ],
)
def test_bad_values_give_one_line_and_exit_code_2(args, fragment):
    result = CliRunner().invoke(emulate, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocontinue: ")
    assert fragment in lines[0]
    assert "hint" in lines[0]


def test_bad_value_in_a_real_process_exits_2_with_one_line():
    result = subprocess.run([*COMMAND, "--quirks", "echo:lots"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("autocontinue: bad quirks")
    assert "restart:0.1,restart-section:0.1" in result.stderr  # the hint names every quirk


def test_help_names_the_restart_quirks():
    help_text = " ".join(CliRunner().invoke(emulate, ["--help"]).output.split())
    assert "restart:0.1,restart-section:0.1" in help_text and "starts the answer over" in help_text


def test_a_port_in_use_is_a_one_line_error_with_exit_code_1():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(emulate, ["--port", str(port)])
    assert result.exit_code == 1
    assert (
        result.stderr.startswith(f"autocontinue: cannot listen on 127.0.0.1:{port}")
        and result.stderr.count("\n") == 1
    )


def _first_lines(*args: str) -> list[str]:
    process = subprocess.Popen([*COMMAND, "--port", "0", *args], stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stderr.readline()]
        if not lines[0].startswith("listening on"):
            lines.append(process.stderr.readline())
        return lines
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)


def test_a_non_loopback_bind_warns_in_one_line_before_listening():
    warning, listening = _first_lines("--host", "0.0.0.0")
    assert re.fullmatch(
        r"warning: the emulator is reachable from other machines at http://0\.0\.0\.0:\d+; .*\(hint: .*\)\n",
        warning,
    )
    assert listening.startswith("listening on http://0.0.0.0:")


def test_any_loopback_address_binds_without_a_warning():
    assert _first_lines("--host", "127.0.0.2")[0].startswith("listening on http://127.0.0.2:")


def test_run_emulator_warns_too_on_a_non_loopback_bind(capfd):
    from autocontinue.emulator import run_emulator

    with run_emulator(host="0.0.0.0"):
        pass
    assert capfd.readouterr().err.startswith("warning: the emulator is reachable from other machines")
