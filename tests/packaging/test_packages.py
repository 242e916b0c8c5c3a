"""Packaging: every way the client is installed without a package index, the admin tool beside each,
and the wheels and sdists meant for an index.

Each route installs into a fresh virtual environment of the Python running the tests, with that
environment's own pip (one route upgrades pip first, one uses uv). The root route installs
everything from the package index; to keep the module short, the other pip routes find the
third-party requirements (minio, datajoint, ...) already installed, in a folder made once and put on
their sys.path by a .pth file, so pip resolves the djarchive distributions as usual and installs
nothing else:

* the root of a clone: ``pip install .``;
* ``pip install git+URL``, and ``pip install --no-deps git+URL`` beside preinstalled requirements;
* ``djarchive-client @ git+URL`` in a requirements file;
* ``pip install ./packages/djarchive-client``, and
  ``pip install git+URL#subdirectory=packages/djarchive-client``;

then the admin tool beside it (``./packages/djarchive-admin`` or its ``#subdirectory`` URL), then the
admin tool uninstalled again. After each step: the commands and imports work, the man pages are
where they belong, no file is owned by two distributions (RECORD), and there is no separate
djarchive-common distribution beside a client that carries djarchive_common. A real upload (admin)
and download (client, after the admin is gone) against a local S3 server (moto) checks that what
was installed runs.

A local clone of this repository stands in for the GitHub URL (``git+file://localhost/...``), so the
routes install the committed state (HEAD), not uncommitted changes. These tests need the package
index and take a few minutes; they run in the tox environment ``packaging``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("djarchive-common", "djarchive-client", "djarchive-admin")
VERSION = "0.1.0"
# What the archive's Dockerfiles install before `pip install --no-deps git+URL`.
PREINSTALLED = ("minio", "datajoint", "tqdm", "urllib3", "certifi", "pycurl")
BIN = "Scripts" if os.name == "nt" else "bin"
DATASET, REVISION = "some-set", "000"
FILES = {
    "README.txt": b"a small dataset\n",
    "sub/dir/data.bin": bytes(range(256)) * 64,
    "top.csv": b"a,b\n1,2\n",
}


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True):
    """Run a command; on an unexpected failure, fail with its output."""
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result


def base_environment() -> dict[str, str]:
    """This process's environment without anything pointing at its own virtual environment."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV", "PIP_USER")
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return environment


class Environment:
    """A fresh virtual environment, the installer that fills it (its own pip, or uv), and what is in it."""

    def __init__(self, path: Path, *, uv: str | None = None, requirements: Path | None = None):
        venv.create(path, with_pip=uv is None, symlinks=os.name != "nt")
        self.path = path
        self.uv = uv
        self.bin = path / BIN
        self.python = self.bin / ("python.exe" if os.name == "nt" else "python")
        self.man1 = path / "share" / "man" / "man1"
        # Where the djarchive commands run: an empty home and working folder, no DJ_*/DJARCHIVE_* settings.
        self.work = path.parent / f"{path.name}-work"
        # A project boundary: datajoint 2.x stops looking for datajoint.json there.
        (self.work / "cwd" / ".git").mkdir(parents=True)
        (self.work / "home").mkdir()
        code = "import sysconfig; print(sysconfig.get_path('purelib'))"
        self.site_packages = Path(self.command("python", "-c", code).stdout.strip())
        if requirements is not None:
            (self.site_packages / "_packaging_test_requirements.pth").write_text(f"{requirements}\n")

    def pip(self, *args: str, cwd: Path | None = None):
        """`pip ARGS` with this environment's pip, or `uv pip ARGS` into it."""
        if self.uv is not None:
            argv = [self.uv, "pip", *args, "--python", str(self.python)]
        else:
            argv = [str(self.python), "-m", "pip", *args]
        return run(argv, cwd=cwd, env=base_environment())

    def uninstall(self, name: str):
        return self.pip("uninstall", name) if self.uv is not None else self.pip("uninstall", "--yes", name)

    def command(self, name: str, *args: str, env: dict[str, str] | None = None, check: bool = True):
        """Run an installed command in the isolated working folder."""
        environment = {k: v for k, v in base_environment().items() if not k.startswith(("DJ_", "DJARCHIVE_"))}
        environment.update(HOME=str(self.work / "home"), DJARCHIVE_LOGLEVEL="WARNING", **(env or {}))
        executable = self.python if name == "python" else self.bin / name
        return run([str(executable), *args], cwd=self.work / "cwd", env=environment, check=check)

    def distributions(self) -> dict[str, Path]:
        """Name (normalized) -> .dist-info folder of every distribution installed in site-packages."""
        found = {}
        for info in self.site_packages.glob("*.dist-info"):
            name = info.name[: -len(".dist-info")].rsplit("-", 1)[0]
            found[name.lower().replace("_", "-")] = info
        return found

    def ours(self) -> set[str]:
        return {name for name in self.distributions() if name.startswith("djarchive")}

    def record(self, name: str, info: Path | None = None) -> set[str]:
        """The files distribution `name` owns, as normalized absolute paths, from its RECORD."""
        info = info or self.distributions()[name]
        with open(info / "RECORD", newline="", encoding="utf-8") as stream:
            return {os.path.normpath(info.parent / row[0]) for row in csv.reader(stream) if row}

    def shared_files(self) -> dict[str, list[str]]:
        """Files that two or more RECORDs list."""
        owners: dict[str, list[str]] = {}
        for name, info in self.distributions().items():
            for path in self.record(name, info):
                owners.setdefault(path, []).append(name)
        return {path: names for path, names in owners.items() if len(names) > 1}

    def requires(self, name: str) -> list[str]:
        metadata = (self.distributions()[name] / "METADATA").read_text(encoding="utf-8")
        prefix = "Requires-Dist:"
        return [line[len(prefix) :].strip() for line in metadata.splitlines() if line.startswith(prefix)]


def assert_installed(environment: Environment, *, admin: bool, separate_common: bool = False) -> None:
    """The client (and the admin tool, or not) works, with its man pages, and no file has two owners."""
    expected = {"djarchive-client"} | ({"djarchive-admin"} if admin else set())
    expected |= {"djarchive-common"} if separate_common else set()
    assert environment.ours() == expected
    help_text = environment.command("djarchive", "--help").stdout
    for word in ("datasets", "revisions", "files", "download", "verify"):
        assert word in help_text
    environment.command("python", "-c", "import djarchive_client, djarchive_common")
    assert (environment.man1 / "djarchive.1").is_file()
    assert (environment.man1 / "djarchive-admin.1").is_file() is admin
    if admin:
        admin_help = environment.command("djarchive-admin", "--help").stdout
        for word in ("manifest", "upload", "publish", "retract"):
            assert word in admin_help
    else:
        assert not (environment.bin / "djarchive-admin").exists()
        probe = environment.command("python", "-c", "import djarchive_admin", check=False)
        assert "No module named 'djarchive_admin'" in probe.stderr
    assert environment.shared_files() == {}
    client_files = [Path(path).as_posix() for path in environment.record("djarchive-client")]
    assert not [path for path in client_files if "/djarchive_admin/" in path]
    if not separate_common:
        # The client carries djarchive_common, and requires what djarchive-common requires.
        assert [path for path in client_files if path.endswith("/djarchive_common/__init__.py")]
        requirements = common_requirements()
        if requirements is not None:  # the extras' requirements ([fsspec], [dask]) aside
            required = [line for line in environment.requires("djarchive-client") if "extra ==" not in line]
            assert sorted(required) == sorted(requirements)


def common_requirements() -> list[str] | None:
    """djarchive-common's requirements, as its pyproject.toml lists them (None before Python 3.11)."""
    try:
        import tomllib
    except ImportError:
        return None
    with open(ROOT / "packages" / "djarchive-common" / "pyproject.toml", "rb") as stream:
        return tomllib.load(stream)["project"]["dependencies"]


def make_bucket(s3: str, bucket: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(f"{s3}/{bucket}", method="PUT"), timeout=30):
        pass


def publish(environment: Environment, s3: str, bucket: str) -> None:
    """Upload and publish a small revision with the installed admin tool."""
    make_bucket(s3, bucket)
    source = environment.work / "dataset"
    for subpath, data in FILES.items():
        (source / subpath).parent.mkdir(parents=True, exist_ok=True)
        (source / subpath).write_bytes(data)
    admin = {
        "DJARCHIVE_ADMIN_ENDPOINT": s3,
        "DJARCHIVE_ADMIN_BUCKET": bucket,
        "DJARCHIVE_ADMIN_ACCESS_KEY": "packaging-admin",
        "DJARCHIVE_ADMIN_SECRET_KEY": "packaging-secret",
    }
    environment.command("djarchive-admin", "upload", DATASET, REVISION, str(source), "-q", env=admin)


def fetch(environment: Environment, s3: str, bucket: str) -> None:
    """List, download and verify that revision with the installed client."""
    client = {
        "DJARCHIVE_CLIENT_ENDPOINT": s3,
        "DJARCHIVE_CLIENT_BUCKET": bucket,
        "DJARCHIVE_CLIENT_ACCESS_KEY": "packaging-client",  # moto refuses anonymous reads without a policy
        "DJARCHIVE_CLIENT_SECRET_KEY": "packaging-secret",
    }
    assert environment.command("djarchive", "datasets", env=client).stdout == f"{DATASET}\n"
    target = environment.work / "download"
    environment.command("djarchive", "download", DATASET, REVISION, str(target), "-q", env=client)
    for subpath, data in FILES.items():
        assert (target / subpath).read_bytes() == data
    environment.command("djarchive", "verify", DATASET, REVISION, str(target), "-q", env=client)


def read_in_place(environment: Environment, s3: str, bucket: str, extra: str) -> None:
    """What the extra is for: ``fsspec`` reads a published file through ``djarchive://`` (the protocol
    found by fsspec's entry point, as pandas finds it); ``dask`` reads it with dask.dataframe too."""
    path = f"djarchive://{DATASET}/{REVISION}/top.csv"
    code = {
        "fsspec": f"import fsspec; print(fsspec.open({path!r}).open().read().decode(), end='')",
        "dask": "import dask.dataframe as dd; "
        f"print(dd.read_csv({path!r}).compute().to_csv(index=False), end='')",
    }[extra]
    env = {
        "DJARCHIVE_CLIENT_ENDPOINT": s3,
        "DJARCHIVE_CLIENT_BUCKET": bucket,
        "DJARCHIVE_CLIENT_ACCESS_KEY": "packaging-client",
        "DJARCHIVE_CLIENT_SECRET_KEY": "packaging-secret",
    }
    assert environment.command("python", "-c", code, env=env).stdout == FILES["top.csv"].decode()


def client_then_admin(
    environment: Environment,
    s3: str,
    install_client,
    install_admin,
    *,
    separate_common: bool = False,
    extra: str | None = None,
) -> None:
    """The client alone, then the admin tool beside it (which publishes a revision), then the admin
    tool uninstalled and the client alone again (which downloads it, and reads it in place through
    ``extra`` when the client was installed with one)."""
    install_client()
    assert_installed(environment, admin=False, separate_common=separate_common)
    install_admin()
    assert_installed(environment, admin=True, separate_common=separate_common)
    bucket = "packaging-" + re.sub("[^a-z0-9]+", "-", environment.path.name.lower()).strip("-")
    publish(environment, s3, bucket)
    environment.uninstall("djarchive-admin")
    assert_installed(environment, admin=False, separate_common=separate_common)
    fetch(environment, s3, bucket)
    if extra is not None:
        read_in_place(environment, s3, bucket, extra)


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    """A clone of this repository's committed state: what `git+URL` routes install from."""
    if not shutil.which("git"):
        pytest.skip("needs git")
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the repository")
    path = tmp_path_factory.mktemp("upstream") / "djarchive"
    run(["git", "clone", "--quiet", str(ROOT), str(path)])
    return path


@pytest.fixture(scope="module")
def git_url(upstream) -> str:
    # file://localhost/..., not file:///...: pip 23.2 (Python 3.11's and 3.12's ensurepip) rejects
    # `name @ git+file:///...` in a requirements file (a URL with no host); pip 24.2 accepts both.
    return "git+file://localhost" + urllib.parse.quote(upstream.as_posix())


@pytest.fixture
def checkout(upstream, tmp_path) -> Path:
    """A fresh clone to install from by path, as a user would have."""
    path = tmp_path / "checkout"
    run(["git", "clone", "--quiet", str(upstream), str(path)])
    return path


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1: its URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def requirements(tmp_path_factory) -> Path:
    """The third-party requirements of the client, installed once into a folder (with uv)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("needs uv")
    folder = tmp_path_factory.mktemp("requirements")
    run([uv, "pip", "install", "--quiet", "--target", str(folder), "--python", sys.executable, *PREINSTALLED])
    return folder


@pytest.fixture
def environment(request, tmp_path, requirements) -> Environment:
    """A fresh virtual environment that finds the client's third-party requirements installed."""
    return Environment(tmp_path / request.node.name.removeprefix("test_")[:40], requirements=requirements)


# ------------------------------------------------------------------------ installs without an index


def test_root_of_a_clone(tmp_path, checkout, s3):
    """`pip install .[fsspec]` in a clone, with every requirement from the package index; the admin
    tool from its folder."""
    environment = Environment(tmp_path / "root_of_a_clone")
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", ".[fsspec]", cwd=checkout),
        lambda: environment.pip("install", "./packages/djarchive-admin", cwd=checkout),
        extra="fsspec",
    )


def test_git_url(environment, git_url, s3):
    """`pip install "djarchive-client[dask] @ git+URL"`, as the README shows an extra from git; the
    admin tool from its #subdirectory URL."""
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", f"djarchive-client[dask] @ {git_url}"),
        lambda: environment.pip("install", f"{git_url}#subdirectory=packages/djarchive-admin"),
        extra="dask",
    )
    assert '"vcs": "git"' in (environment.distributions()["djarchive-client"] / "direct_url.json").read_text()


def test_git_url_without_dependencies(environment, git_url, s3):
    """`pip install --no-deps git+URL` beside preinstalled requirements (minio, datajoint, tqdm,
    urllib3, certifi: the shared folder) installs one distribution that holds all the client's code;
    the admin tool, also with --no-deps, beside it."""
    before = set(environment.distributions())
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", "--no-deps", git_url),
        lambda: environment.pip("install", "--no-deps", f"{git_url}#subdirectory=packages/djarchive-admin"),
    )
    assert set(environment.distributions()) - before == {"djarchive-client"}
    environment.pip("check")


def test_requirements_file(environment, git_url, checkout, s3, tmp_path):
    """`djarchive-client @ git+URL` in a requirements file: pip checks the name of what the root builds;
    the admin tool from a clone's folder."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"djarchive-client[fsspec] @ {git_url}\n")
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", "-r", str(requirements)),
        lambda: environment.pip("install", "./packages/djarchive-admin", cwd=checkout),
        extra="fsspec",
    )


def test_client_folder(environment, checkout, s3):
    """`pip install ./packages/djarchive-client[fsspec]` alone, though no index has djarchive-common."""
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", "./packages/djarchive-client[fsspec]", cwd=checkout),
        lambda: environment.pip("install", "./packages/djarchive-admin", cwd=checkout),
        extra="fsspec",
    )


def test_client_subdirectory_url_with_the_newest_pip(environment, git_url, s3):
    """`pip install git+URL#subdirectory=packages/djarchive-client` (the newest pip; the other routes
    use the one ensurepip brings); the admin tool from its #subdirectory URL."""
    environment.pip("install", "--upgrade", "pip")
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip(
            "install", f"djarchive-client[fsspec] @ {git_url}#subdirectory=packages/djarchive-client"
        ),
        lambda: environment.pip("install", f"{git_url}#subdirectory=packages/djarchive-admin"),
        extra="fsspec",
    )


def test_client_folder_with_uv(tmp_path, checkout, s3):
    """uv, as tox-uv uses it: `uv pip install ./packages/djarchive-client`, then the admin tool."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("needs uv")
    environment = Environment(tmp_path / "uv", uv=uv)
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", "./packages/djarchive-client[fsspec]", cwd=checkout),
        lambda: environment.pip("install", "./packages/djarchive-admin", cwd=checkout),
        extra="fsspec",
    )


# -------------------------------------------------------------------------------- for a package index


BUILD_INSTALLER = ["--installer", "uv"] if shutil.which("uv") else []  # isolated build environments, faster


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Wheels and sdists of the three packages, built with `python -m build` (an sdist, then the wheel
    from it) from a copy of the working tree's packages/ folder, siblings included."""
    out = tmp_path_factory.mktemp("dist")
    tree = tmp_path_factory.mktemp("src") / "packages"
    shutil.copytree(ROOT / "packages", tree, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    for name in PACKAGES:
        run([sys.executable, "-m", "build", *BUILD_INSTALLER, "--outdir", str(out), str(tree / name)])
    return out


def wheel_of(dist: Path, name: str) -> Path:
    return dist / f"{name.replace('-', '_')}-{VERSION}-py3-none-any.whl"


def sdist_of(dist: Path, name: str) -> Path:
    return dist / f"{name.replace('-', '_')}-{VERSION}.tar.gz"


def test_every_package_builds_a_wheel_and_an_sdist_for_an_index(dist):
    for name in PACKAGES:
        assert wheel_of(dist, name).is_file()
        assert sdist_of(dist, name).is_file()
    # The client's, built from its sdist as an index would have it: djarchive_client alone, requiring
    # djarchive-common; no URL in any metadata (an index refuses them).
    with zipfile.ZipFile(wheel_of(dist, "djarchive-client")) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"djarchive_client-{VERSION}.dist-info/METADATA").decode()
    assert not [name for name in names if name.startswith("djarchive_common/")]
    assert f"djarchive_client-{VERSION}.data/data/share/man/man1/djarchive.1" in names
    assert f"Requires-Dist: djarchive-common=={VERSION}" in metadata.splitlines()
    with tarfile.open(sdist_of(dist, "djarchive-client")) as sdist:
        members = sdist.getnames()
        info = sdist.extractfile(f"djarchive_client-{VERSION}/PKG-INFO").read().decode()
    assert not [name for name in members if "djarchive_common" in name or ".." in name]
    assert f"djarchive_client-{VERSION}/man/djarchive.1" in members
    assert f"Requires-Dist: djarchive-common=={VERSION}" in info.splitlines()
    for name in PACKAGES:
        with zipfile.ZipFile(wheel_of(dist, name)) as wheel:
            metadata = wheel.read(f"{name.replace('-', '_')}-{VERSION}.dist-info/METADATA").decode()
        requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
        assert not [line for line in requirements if "@" in line]
    with zipfile.ZipFile(wheel_of(dist, "djarchive-admin")) as wheel:
        assert f"djarchive_admin-{VERSION}.data/data/share/man/man1/djarchive-admin.1" in wheel.namelist()


def test_the_root_and_the_client_folder_build_the_same_distribution(checkout, tmp_path):
    """The repository root and packages/djarchive-client build one distribution: the same requirements,
    extras, command and fsspec entry point (read from the packages' own pyproject.toml files)."""

    def metadata(folder: Path) -> tuple[list[str], str]:
        out = tmp_path / folder.name
        # `build`, not `pip wheel`: tox-uv's environments, as the README sets tox up, have no pip
        run([sys.executable, "-m", "build", *BUILD_INSTALLER, "--wheel", "--outdir", str(out), str(folder)])
        (wheel,) = out.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            info = f"djarchive_client-{VERSION}.dist-info"
            lines = archive.read(f"{info}/METADATA").decode().splitlines()
            entry_points = archive.read(f"{info}/entry_points.txt").decode()
        wanted = ("Requires-Dist:", "Provides-Extra:")
        return sorted(line for line in lines if line.startswith(wanted)), entry_points

    root, client = metadata(checkout), metadata(checkout / "packages" / "djarchive-client")
    assert root == client
    assert "Provides-Extra: fsspec" in root[0]
    assert "Provides-Extra: dask" in root[0]
    assert "djarchive = djarchive_client.filesystem:DJArchiveFileSystem" in root[1]


def test_the_index_pair_then_the_admin_tool(dist, tmp_path, requirements, s3):
    """The wheels an index would serve: djarchive-common and djarchive-client, then djarchive-admin."""
    environment = Environment(tmp_path / "index", requirements=requirements)
    pair = (wheel_of(dist, "djarchive-common"), wheel_of(dist, "djarchive-client"))
    client_then_admin(
        environment,
        s3,
        lambda: environment.pip("install", *map(str, pair)),
        lambda: environment.pip("install", str(wheel_of(dist, "djarchive-admin"))),
        separate_common=True,
    )
    environment.pip("install", str(wheel_of(dist, "djarchive-admin")))
    rendered = render(environment.man1 / "djarchive-admin.1")
    for word in ("manifest", "upload", "publish", "retract", "revisions"):
        assert f"djarchive-admin {word}" in rendered


def render(page: Path) -> str:
    if shutil.which("man"):
        command = ["man", "-l", str(page)]
        return subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100"}
        ).stdout
    return page.read_text()
