"""Shared fixtures: an isolated user directory and environment, and emulators over real HTTP.

* every test runs with ``AUTOCONTINUE_HOME`` in a temporary directory and without
  ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``, so nothing reaches a real account or file;
* ``emulator_url``: one emulator with default options for the whole session (call
  ``reset_emulator(url)`` when a test needs clean stats);
* ``start_emulator(**options)``: starts an emulator with custom options (same keywords as
  ``run_emulator``) and stops it when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request

import pytest

from autocontinue.emulator import run_emulator


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCONTINUE_HOME", str(tmp_path / "autocontinue-home"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def emulator_url():
    """Base URL of a default emulator shared by the session."""
    with run_emulator() as url:
        yield url


@pytest.fixture
def start_emulator():
    """Start emulators with custom options; each stops when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**options):
            return stack.enter_context(run_emulator(**options))

        yield start


def emulator_stats(url: str) -> dict:
    """``GET /emulator/stats`` as a dict."""
    with urllib.request.urlopen(f"{url}/emulator/stats") as response:
        return json.load(response)


def reset_emulator(url: str) -> None:
    """``POST /emulator/reset``."""
    request = urllib.request.Request(f"{url}/emulator/reset", method="POST", data=b"")
    with urllib.request.urlopen(request) as response:
        response.read()
