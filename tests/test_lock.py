"""The lock: every install is uv.lock (and package-lock.json) exactly, and drift is caught."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.conftest import REPO


def uv(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    # scripts/uv: the pinned uv, installed on first use; --offline: a check never resolves anew.
    return subprocess.run(
        [str(REPO / "scripts" / "uv"), "--directory", str(cwd), *args, "--offline"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_lock_agrees_with_pyproject() -> None:
    result = uv("lock", "--check")
    assert result.returncode == 0, f"pyproject.toml and uv.lock disagree; run scripts/lock.\n{result.stderr}"


def test_a_requirement_missing_from_the_lock_is_caught(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    edited = pyproject.read_text().replace('"orjson>=3.9",', '"orjson>=3.9",\n    "six>=1.16",', 1)
    assert edited != pyproject.read_text()
    pyproject.write_text(edited)
    assert uv("lock", "--check", cwd=tmp_path).returncode != 0


def test_every_package_is_pinned_with_hashes() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    registry = [p for p in lock["package"] if "registry" in p["source"]]
    assert len(registry) > 50  # every transitive dependency, test tools included
    names = {p["name"] for p in registry}
    assert {"strawberry-graphql", "redis", "discord-py", "pytest", "mypy", "aiohttp", "yarl"} <= names
    for package in registry:
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files and all(f["hash"].startswith("sha256:") for f in files), package["name"]
    stub = REPO / "frontend-stub"
    npm_lock = (stub / "package-lock.json").read_text()
    assert '"integrity": "sha512-' in npm_lock and '"version": "6.4.2"' in npm_lock


def test_installs_go_through_the_lock() -> None:
    """No command of ours installs a package by resolving afresh: pip only with hashes, npm only
    with `npm ci` (or locking), and Python packages through `uv sync --locked`."""
    places = [
        REPO / "Dockerfile",
        REPO / ".ci" / "run",
        *sorted((REPO / "scripts").iterdir()),
        REPO / "README.md",
    ]
    installs = []
    for path in places:
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            if re.search(
                r"\b(pip|npm) (install|ci)\b|\buv\"? (sync|pip install)\b", line
            ) and not line.lstrip().startswith("#"):
                installs.append((path.name, line.strip()))
    assert {"setup", "uv", "Dockerfile"} <= {where for where, _ in installs}
    for where, line in installs:
        if "pip install" in line:
            assert "--require-hashes" in line, (where, line)
        elif "npm install" in line:
            assert "--package-lock-only" in line, (where, line)
        elif "npm ci" in line:
            continue
        else:
            assert "--locked" in line, (where, line)
