"""Generates the djarchive(1) man page from the real parser at build time (argparse-manpage)
and installs it into share/man/man1; everything else is in pyproject.toml."""

from build_manpages import build_manpages, get_build_py_cmd, get_install_cmd
from setuptools import setup

setup(
    cmdclass={"build_manpages": build_manpages, "build_py": get_build_py_cmd(), "install": get_install_cmd()}
)
