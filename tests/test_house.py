"""The house's own habits: the version written once, the changelog, bench's exported names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import autocontinue

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the check is the same on any version

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_in_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "autocontinue.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", autocontinue.__version__)


def test_the_changelog_has_the_current_version_and_what_is_unreleased():
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{autocontinue.__version__}]" in changelog


def test_bench_common_exports_only_names_it_has():
    common = importlib.import_module("bench.common")
    assert [name for name in common.__all__ if not hasattr(common, name)] == []
