"""What the djarchive-client distribution holds depends on where it is built from; the rest of its
metadata is static, in pyproject.toml.

* From a checkout of the repository (``pip install ./packages/djarchive-client``, pip's or uv's clone
  of ``git+URL#subdirectory=packages/djarchive-client``, ``pip wheel``), where no package index has
  djarchive-common: the distribution carries the ``djarchive_common`` package itself, from the
  sibling folder ../djarchive-common, and requires what djarchive-common requires. This is the same
  distribution the repository's root builds (``pip install .``, ``git+URL``), so installing either
  one replaces the other cleanly, and ``djarchive-admin`` (which requires ``djarchive-client``)
  installs beside either without a second owner of djarchive_common's files.
* From an sdist (which has no sibling folder), and every sdist: ``djarchive_client`` alone,
  requiring ``djarchive-common`` of the same version, as for a package index. ``python -m build``
  (an sdist, then the wheel from it) therefore makes the wheel and sdist to upload.

No URL is ever written into the metadata: a ``djarchive-common @ file:///...`` requirement points at
a folder that pip deletes after an install from git (and the user after ``pip install ./...``), and
pip and uv read it again whenever a later install involves djarchive-client.
"""

import sys
from pathlib import Path

from setuptools import find_packages, setup

if sys.version_info >= (3, 11):
    import tomllib
else:  # a build requirement on Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
COMMON = HERE.parent / "djarchive-common"


def project_table(folder: Path) -> dict:
    with open(folder / "pyproject.toml", "rb") as stream:
        return tomllib.load(stream)["project"]


def bundles_common() -> bool:
    """Whether this build carries djarchive_common: from a checkout, except an sdist."""
    return (COMMON / "src" / "djarchive_common" / "__init__.py").is_file() and "sdist" not in sys.argv


VERSION = project_table(HERE)["version"]
PACKAGES = find_packages("src")
PACKAGE_DIR = {name: f"src/{name}" for name in PACKAGES if "." not in name}
# Third-party requirements of djarchive_client itself (djarchive_common's are in its pyproject.toml).
REQUIRES: list[str] = []

if bundles_common():
    common_packages = find_packages(str(COMMON / "src"))
    PACKAGES += common_packages
    PACKAGE_DIR.update(
        {name: f"../djarchive-common/src/{name}" for name in common_packages if "." not in name}
    )
    REQUIRES += project_table(COMMON)["dependencies"]
else:
    REQUIRES.append(f"djarchive-common=={VERSION}")

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={name: ["py.typed"] for name in PACKAGES if "." not in name},
    install_requires=REQUIRES,
    data_files=[("share/man/man1", ["man/djarchive.1"])],
)
