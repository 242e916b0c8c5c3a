"""The repository root builds the researchers' client, the same distribution packages/djarchive-client
builds from a checkout (djarchive_client with djarchive_common beside it): for ``pip install .`` in a
clone, ``pip install git+URL`` and ``djarchive-client[fsspec] @ git+URL``.

Its requirements, extras, commands and entry points are read from the packages' own pyproject.toml
files, so the two routes cannot drift apart: djarchive-common's requirements, and djarchive-client's
extras (``fsspec``, ``dask``), console script and ``fsspec.specs`` entry point.
"""

import sys
from pathlib import Path

from setuptools import setup

if sys.version_info >= (3, 11):
    import tomllib
else:  # a build requirement on Python 3.10
    import tomli as tomllib

PACKAGES = Path(__file__).resolve().parent / "packages"


def project_table(name: str) -> dict:
    with open(PACKAGES / name / "pyproject.toml", "rb") as stream:
        return tomllib.load(stream)["project"]


client = project_table("djarchive-client")
setup(
    install_requires=project_table("djarchive-common")["dependencies"],
    extras_require=client["optional-dependencies"],
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in client["scripts"].items()],
        **{
            group: [f"{name} = {target}" for name, target in entries.items()]
            for group, entries in client["entry-points"].items()
        },
    },
)
