"""Packaging: wheels and sdists build, a client-only install works without the admin tool, man pages.

These build real distributions and install them into a fresh virtual environment, so they need
the package index and take a minute; they run in the tox environment ``packaging``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("djarchive-common", "djarchive-client", "djarchive-admin")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Wheels and sdists of the three packages, built with `python -m build` from a copy of the tree."""
    out = tmp_path_factory.mktemp("dist")
    tree = tmp_path_factory.mktemp("src") / "packages"
    shutil.copytree(ROOT / "packages", tree, ignore=shutil.ignore_patterns("man", "*.egg-info", "build"))
    for name in PACKAGES:
        command = [sys.executable, "-m", "build", "--outdir", str(out), str(tree / name)]
        subprocess.run(command, check=True, capture_output=True)
    return out


def test_every_package_builds_a_wheel_and_an_sdist(dist):
    names = sorted(path.name for path in dist.iterdir())
    for name in PACKAGES:
        stem = name.replace("-", "_")
        assert f"{stem}-0.1.0-py3-none-any.whl" in names
        assert f"{stem}-0.1.0.tar.gz" in names


def render(page: Path) -> str:
    if shutil.which("man"):
        command = ["man", "-l", str(page)]
        return subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100"}
        ).stdout
    return page.read_text()


def test_client_only_install_then_the_admin_tool(dist, tmp_path):
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    wheels = [str(next(dist.glob(f"{name.replace('-', '_')}-*.whl"))) for name in PACKAGES[:2]]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *wheels],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    help_text = subprocess.run(
        [str(environment / "bin" / "djarchive"), "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert "download" in help_text
    assert not (environment / "bin" / "djarchive-admin").exists()
    probe = subprocess.run(
        [str(python), "-c", "import djarchive_admin"], capture_output=True, text=True, cwd=tmp_path
    )
    assert probe.returncode != 0
    assert "No module named 'djarchive_admin'" in probe.stderr
    page = environment / "share" / "man" / "man1" / "djarchive.1"
    assert page.is_file()
    assert not (environment / "share" / "man" / "man1" / "djarchive-admin.1").exists()
    rendered = render(page)
    for word in ("datasets", "revisions", "download", "verify", "files"):
        assert word in rendered
    # The client still lists nothing of the admin side, and works against an endpoint offline.
    result = subprocess.run(
        [str(environment / "bin" / "djarchive"), "datasets", "--endpoint", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("djarchive: error: cannot reach 127.0.0.1:9")

    # Adding the admin tool brings its command and its man page.
    admin_wheel = str(next(dist.glob("djarchive_admin-*.whl")))
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", admin_wheel], check=True, capture_output=True
    )
    admin_help = subprocess.run(
        [str(environment / "bin" / "djarchive-admin"), "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert "upload" in admin_help
    admin_page = render(environment / "share" / "man" / "man1" / "djarchive-admin.1")
    for word in ("manifest", "upload", "publish", "retract", "revisions"):
        assert f"djarchive-admin {word}" in admin_page
