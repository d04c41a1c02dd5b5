"""Dependency floors that matter for security."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _requirement(name: str) -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    found = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == name]
    assert len(found) == 1, found
    return found[0]


def test_pyjwt_excludes_the_issuer_substring_bug() -> None:
    # CVE-2024-53861: PyJWT 2.10.0 checked `iss` as a substring of the expected issuer.
    specifier = _requirement("pyjwt").specifier
    assert not specifier.contains("2.10.0")
    assert specifier.contains("2.10.1")
    assert Version(version("pyjwt")) >= Version("2.10.1")
