"""The man page and the completion scripts come from the real parser and cover every subcommand."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from djarchive_client.cli import main
from djarchive_client.parser import build_parser
from tests.helpers import rendered_man_page

SUBCOMMANDS = ("datasets", "revisions", "files", "download", "verify", "completion")


def test_man_page_renders_every_subcommand(tmp_path):
    manpage = pytest.importorskip("argparse_manpage.manpage")
    page = tmp_path / "djarchive.1"
    page.write_text(str(manpage.Manpage(build_parser(), _data={"project_name": "djarchive-client"})))
    text = page.read_text()
    for name in SUBCOMMANDS:
        assert f"djarchive {name}" in text
    # roff reads a line starting with ' or . as a request and drops it: no such text line
    assert not [line for line in text.splitlines() if line.startswith("'")]
    rendered = rendered_man_page(page)
    if rendered is not None:
        assert "--include GLOB" in rendered
        assert "download a revision into a folder" in rendered
        assert "else the public archive, anonymously" in rendered


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_bash_completion(capsys, tmp_path):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "djarchive.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        cword = len(words) - 1
        shell = (
            f"source {script}; COMP_WORDS=(djarchive {' '.join(words)}); COMP_CWORD={cword + 1}; "
            '_djarchive_complete; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        return subprocess.run(
            ["bash", "-c", shell], capture_output=True, text=True, check=True
        ).stdout.split()

    assert complete("d") == ["datasets", "diff", "download"]
    assert complete("--debug", "ver") == ["verify"]
    assert complete("download", "--in") == ["--include", "--insecure"]
    assert "--fast" in complete("verify", "--")
    assert complete("completion", "") == ["bash", "zsh"]


def test_zsh_completion_wraps_the_bash_one(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert "bashcompinit" in script
    assert "complete -o filenames -o bashdefault -F _djarchive_complete djarchive" in script
