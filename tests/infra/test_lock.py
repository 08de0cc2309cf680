"""The lock files pin every requirement within its range, and the image and CI install them."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.infra_helpers import ROOT

RUNTIME, DEV = ROOT / "requirements.txt", ROOT / "requirements-dev.txt"
RUNTIME_LOCK, DEV_LOCK = ROOT / "requirements.lock", ROOT / "requirements-dev.lock"


def _requirements(path: Path) -> list[Requirement]:
    out = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text and not text.startswith("-"):
            out.append(Requirement(text))
    return out


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", " ", "-")):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line} is not pinned"
            pins[canonicalize_name(Requirement(name).name)] = version.split(";")[0].strip()
    return pins


@pytest.mark.parametrize(("spec", "lock"), [(RUNTIME, RUNTIME_LOCK), (DEV, DEV_LOCK)])
def test_every_requirement_is_pinned_within_its_range(spec: Path, lock: Path) -> None:
    """Each requirement of requirements*.txt is pinned in its lock, inside its range."""
    pins = _pins(lock)
    for requirement in _requirements(spec):
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def test_the_dev_lock_pins_the_runtime_exactly_as_the_image() -> None:
    """CI tests the versions the image runs: the dev lock repeats every runtime pin."""
    dev = _pins(DEV_LOCK)
    for name, version in _pins(RUNTIME_LOCK).items():
        assert dev.get(name) == version, name


def test_the_dev_lock_includes_the_runtime_requirements() -> None:
    """requirements-dev.txt builds on requirements.txt, so the dev lock covers it."""
    assert "-r requirements.txt" in DEV.read_text().splitlines()


def test_make_install_uses_the_dev_lock() -> None:
    """`make install` (so `make test` and .ci/run) installs requirements-dev.lock."""
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --disable-pip-version-check --progress-bar on -r requirements-dev.lock" in (
        makefile
    )
    assert "$(VENV)/.installed: requirements.lock requirements-dev.lock" in makefile


def test_azure_functions_stays_on_1x_while_the_image_is_python_311() -> None:
    """azure-functions 2.x needs Python >= 3.13, so the 3.11 image keeps the 1.x line."""
    (requirement,) = (r for r in _requirements(RUNTIME) if r.name == "azure-functions")
    assert not requirement.specifier.contains("2.0.0")
    assert "python:4-python3.11" in (ROOT / "Dockerfile").read_text()
