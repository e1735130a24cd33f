"""The public names: ``autocontinue.__all__`` is exactly what the package offers, each module's
``__all__`` names what it defines, and every name the README uses exists."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import types
from pathlib import Path

import pytest

import autocontinue

README = Path(__file__).resolve().parents[1] / "README.md"


def _modules() -> list[str]:
    names = ["autocontinue"]
    for info in pkgutil.walk_packages(autocontinue.__path__, "autocontinue."):
        if not info.name.rpartition(".")[2].startswith("_"):  # private modules and __main__
            names.append(info.name)
    return names


def test_the_package_all_is_exactly_its_public_names():
    """The package imports its names on first use (PEP 562): ``dir()`` lists them all."""
    public = {
        name
        for name in dir(autocontinue)
        if not name.startswith("_") and not isinstance(getattr(autocontinue, name), types.ModuleType)
    }
    assert sorted(set(autocontinue.__all__) - {"__version__"}) == sorted(public)
    assert len(autocontinue.__all__) == len(set(autocontinue.__all__))


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from autocontinue import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(autocontinue.__all__)


def test_options_and_the_limit_errors_are_exported():
    for name in ("Options", "Prompt", "MaxTokensExceededError", "ContextWindowError", "generate", "astream"):
        assert name in autocontinue.__all__


@pytest.mark.parametrize("module_name", _modules())
def test_every_module_all_names_what_it_defines(module_name):
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not have: {missing}"


def test_each_exported_name_is_exported_where_it_is_defined():
    for name in autocontinue.__all__:
        value = getattr(autocontinue, name)
        home = getattr(value, "__module__", None)
        if not (inspect.isclass(value) or inspect.isfunction(value)) or home in (None, "autocontinue"):
            continue
        assert name in importlib.import_module(home).__all__, f"{name} is not in {home}.__all__"


def test_every_name_the_readme_uses_exists():
    text = README.read_text("utf-8")
    used = set(re.findall(r"\bautocontinue\.([A-Za-z_]\w*)", text))
    imported = re.findall(r"from autocontinue(?:\.(\w+))? import ([\w, ]+)", text)
    assert used, "the README uses autocontinue.<name>"
    for name in used:
        assert hasattr(autocontinue, name) or importlib.util.find_spec(f"autocontinue.{name}"), name
    for module, names in imported:
        owner = importlib.import_module(f"autocontinue.{module}" if module else "autocontinue")
        for name in names.split(","):
            assert hasattr(owner, name.strip()), f"{owner.__name__}.{name.strip()}"
