"""The man page and the completion scripts come from the real parser and cover every subcommand."""

from __future__ import annotations

import shutil

import pytest

from djarchive_client.cli import main
from djarchive_client.parser import build_parser
from tests.helpers import bash_complete, rendered_man_page

SUBCOMMANDS = ("datasets", "revisions", "files", "download", "verify", "signature", "completion")


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

    def complete(line: str) -> list[str]:
        return bash_complete(script, "_djarchive_complete", line)

    assert complete("djarchive d") == ["datasets", "diff", "download"]
    assert complete("djarchive --debug ver") == ["verify"]
    assert complete("djarchive download --in") == ["--include", "--insecure"]
    assert "--fast" in complete("djarchive verify --")
    assert complete("djarchive download --tr") == ["--trust"]
    assert sorted(complete("djarchive files --re")) == ["--require-signature", "--revoke"]
    assert complete("djarchive completion ") == ["bash", "zsh"]


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
@pytest.mark.parametrize(
    "line",
    [
        "djarchive --endpoint host:9000 do",
        "djarchive --endpoint http://127.0.0.1:9000 --bucket my-archive do",
        "djarchive --endpoint=host:9000 do",
        "djarchive --insecure --bucket b do",
    ],
)
def test_bash_completion_after_an_option_that_takes_a_value(capsys, tmp_path, line):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "djarchive.bash"
    script.write_text(capsys.readouterr().out)

    assert bash_complete(script, "_djarchive_complete", line) == ["download"]
    # the value itself: nothing to offer (not the commands)
    assert bash_complete(script, "_djarchive_complete", "djarchive --bucket ") == []
    assert bash_complete(script, "_djarchive_complete", "djarchive download --jobs 8 --dry") == ["--dry-run"]


def test_zsh_completion_wraps_the_bash_one(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert "bashcompinit" in script
    assert "complete -o filenames -o bashdefault -F _djarchive_complete djarchive" in script
