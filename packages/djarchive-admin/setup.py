"""Generates the djarchive-admin(1) man page from the real parser at build time (argparse-manpage)
and installs it into share/man/man1; everything else is in pyproject.toml.

The admin parser reuses the client's option helpers. In this repository the common and client
sources sit beside this package and are put on sys.path for the build; an sdist carries the page
generated when it was made, which is kept when the client cannot be imported (a build from the
sdist alone)."""

import sys
from pathlib import Path

from build_manpages import build_manpages, get_build_py_cmd, get_install_cmd
from setuptools import setup
from setuptools.command.sdist import sdist

PACKAGES = Path(__file__).resolve().parent.parent
for sibling in ("djarchive-common", "djarchive-client"):
    if (PACKAGES / sibling / "src").is_dir():
        sys.path.insert(0, str(PACKAGES / sibling / "src"))


class build_manpages_or_keep(build_manpages):
    """Build the page from the parser, or keep the one the sdist carries."""

    def run(self):
        try:
            import djarchive_client.parser  # noqa: F401
        except ImportError:
            if all(Path(page).is_file() for page in self.manpages_data):
                return
            raise
        super().run()


class sdist_with_manpages(sdist):
    """Put the generated page into the sdist."""

    def run(self):
        self.run_command("build_manpages")
        super().run()


setup(
    cmdclass={
        "build_manpages": build_manpages_or_keep,
        "build_py": get_build_py_cmd(),
        "install": get_install_cmd(),
        "sdist": sdist_with_manpages,
    }
)
