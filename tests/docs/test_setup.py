"""Setting up, as the README tells a newcomer: scripts/_venv.sh's checks, and installing outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.docs.page import REPO


def _checkout(tmp_path: Path) -> Path:
    """A copy of what scripts/serve needs to set up .venv, without the real .venv."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "scripts", root / "scripts")
    return root


def _serve(root: Path, python: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(root / "scripts" / "serve"), "--help"],
        env={**environment, "PYTHON": python, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _fake_python(tmp_path: Path, version: str) -> Path:
    """An interpreter that says it is an old Python and fails the version check, as one would."""
    path = tmp_path / f"python{version}"
    path.write_text(f'#!/bin/sh\ncase "$*" in *platform*) echo {version} ;; *) exit 1 ;; esac\n')
    path.chmod(0o755)
    return path


def test_an_old_python_is_refused_before_anything_is_made_with_a_way_to_pick_another(tmp_path):
    """Python 3.10 gets one clear message naming PYTHON=, not pip's confusing one, and no .venv."""
    root = _checkout(tmp_path)
    result = _serve(root, str(_fake_python(tmp_path, "3.10.14")))
    assert result.returncode == 1
    assert "is Python 3.10.14; rpc-tools needs Python 3.11 or newer" in result.stderr
    assert "PYTHON=python3.12" in result.stderr
    assert not (root / ".venv").exists()


def test_a_python_that_is_not_there_is_named(tmp_path):
    """A PYTHON that does not exist is named as such."""
    root = _checkout(tmp_path)
    result = _serve(root, "python3.99")
    assert result.returncode == 1
    assert "cannot find python3.99" in result.stderr
    assert not (root / ".venv").exists()


def _break_install(root: Path) -> None:
    # pip refuses a pyproject.toml it cannot read, at once and offline.
    (root / "pyproject.toml").write_text("[build-system\n")


@pytest.mark.slow
def test_a_failed_first_install_leaves_no_half_made_venv(tmp_path):
    """When pip fails, the first run has said what it was doing, and it removes .venv."""
    root = _checkout(tmp_path)
    _break_install(root)
    result = _serve(root, sys.executable)
    assert result.returncode != 0
    assert "setting up .venv" in result.stderr and "first run" in result.stderr
    assert "removed it" in result.stderr
    assert not (root / ".venv").exists()


@pytest.mark.slow
def test_a_venv_left_by_an_old_python_is_made_again(tmp_path):
    """A .venv that does not run Python 3.11+ is not used: the script says so and starts over."""
    root = _checkout(tmp_path)
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(_fake_python(tmp_path, "3.9.18"), root / ".venv" / "bin" / "python")
    _break_install(root)  # so that the test stops after the new .venv is made
    result = _serve(root, sys.executable)
    assert "does not run Python 3.11+" in result.stderr
    assert "setting up .venv" in result.stderr
    assert not (root / ".venv").exists()


@pytest.mark.slow
def test_a_wheel_installs_into_a_fresh_environment_with_both_commands(tmp_path):
    """docs/development.md's install steps: pip wheel, pip install into a new venv, the commands run."""
    wheels = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("rpc_tools-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
    )
    outside = tmp_path / "elsewhere"  # not the checkout: the installed package must stand alone
    outside.mkdir()
    for command in ("rpc-server", "rpc-client"):
        result = subprocess.run(
            [str(bin_dir / command), "--help"], cwd=outside, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage:")
    # The server loads its schemas from the installed package data.
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", "import rpc_server; print(sorted(rpc_server.builtin_tools()))"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "multiply" in result.stdout
