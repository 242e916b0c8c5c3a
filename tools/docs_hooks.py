"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

* The command-line reference is generated from the real parsers at build time: a page line
  ``<!-- cli: djarchive_client.parser -->`` becomes that module's ``build_parser()`` rendered as
  markdown (usage, description, every option, every subcommand), so the reference says what
  ``--help`` and the man pages say. The parsers import only the standard library, so the site
  builds without installing the packages: their sources are put on ``sys.path`` here.
* README.rst links into the site by the pages' paths (``<docs/how-to/revisions.md>``): a link to
  a page the site does not have fails the strict build, as a broken link inside the site does.
* Docstrings are written with Sphinx roles (``:class:`~a.B```), which mkdocstrings shows as
  written; in the rendered pages they become plain code (``B``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "packages" / name / "src" for name in ("djarchive-common", "djarchive-client", "djarchive-admin")
]
WIDTH = 88  # the columns usage lines are wrapped at, whatever the building terminal's width

log = logging.getLogger("mkdocs.hooks.djarchive")  # under "mkdocs": its warnings fail --strict
_README_LINK = re.compile(r"<(docs/[^>]+)>`_")
_DIRECTIVE = re.compile(r"^<!-- cli: ([\w.]+) -->$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):(<code[^>]*>)(~?)([^<]*)</code>")
_LABEL = re.compile(r"^([a-z][a-z ()]*):[ \t]*(.*)$", re.DOTALL)
# Words of a help text shown as code: options (with a value in capitals, or jsonl), environment
# variables (and their ``_SUFFIX`` shorthands), configuration keys, store names and files.
_CODE = re.compile(
    r"--[a-z][\w-]*(?: (?:[A-Z][A-Z/]*[A-Z]\b|jsonl\b))?"
    r"|\bDJARCHIVE_[A-Z_]+|(?<![\w.])_[A-Z][A-Z_]+\b"
    r"|\bdjarchive(?:\.[a-z_]+)*\.(?:[a-z_]+|\*)|\bdjarchive_(?:client|admin)\b"
    r"|[\w~/.-]*\.json\b|(?<![\w.~/-])[\w.~/-]*djarchive-manifest\.\w+"
)
_ESCAPE = re.compile(r"([\\`*_\[\]>|#])")


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Warn about every link of README.rst into ``docs/`` that names no page of the site."""
    readme = ROOT / "README.rst"
    docs = Path(config["docs_dir"]).resolve().relative_to(ROOT).as_posix()
    for target in _README_LINK.findall(readme.read_text(encoding="utf-8")):
        page = target.removeprefix(f"{docs}/").split("#")[0]
        if files.get_file_from_path(page) is None:
            log.warning("README.rst links to %s, which is not a page of the site", target)
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every ``<!-- cli: MODULE -->`` line with MODULE's parser rendered as markdown."""
    return _DIRECTIVE.sub(lambda match: render_cli(match[1]), markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    """Sphinx roles as plain code (``~`` keeps the last name), and reST's ``::`` as ``:``."""

    def plain(match: re.Match[str]) -> str:
        name = match[3].rsplit(".", 1)[-1] if match[2] else match[3]
        return f"{match[1]}{name}</code>"

    return _ROLE.sub(plain, html).replace("::</p>", ":</p>")


def render_cli(module_name: str) -> str:
    """The parser of ``module_name`` (its ``build_parser()``), as markdown."""
    with _rendering():
        module = importlib.import_module(module_name)
        if not Path(module.__file__ or "").resolve().is_relative_to(ROOT):
            raise RuntimeError(
                f"{module_name} is imported from {module.__file__}, not from this checkout ({ROOT})"
            )
        return "\n".join(_program(module.build_parser()))


@contextlib.contextmanager
def _rendering() -> Iterator[None]:
    """This checkout's package sources first on ``sys.path`` (MkDocs restores the path after
    loading a hook, so they are put there for each page), and usage lines wrapped at ``WIDTH``
    columns whatever the terminal's width (argparse reads ``COLUMNS``)."""
    path, columns = sys.path[:], os.environ.get("COLUMNS")
    sys.path[:0] = [str(source) for source in SOURCES]
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        yield
    finally:
        sys.path[:] = path
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _program(parser: argparse.ArgumentParser) -> Iterator[str]:
    """The top-level parser: usage, description, commands, options, epilog; then each subcommand."""
    yield from _usage(parser)
    yield from _text(parser.description or "", parser.prog)
    subcommands = _subcommands(parser)
    if subcommands:
        yield from ["## Commands", "", "| Command | What it does |", "| --- | --- |"]
        for name, sub, summary in subcommands:
            yield f"| [`{name}`](#{_slug(sub.prog)}) | {_escape(summary)} |"
        yield ""
    shared = {}
    yield from ["## Options", ""]
    for title, actions in _groups(parser):
        shared[title] = [action.option_strings for action in actions]
        if title != "options":  # argparse's own group: under the section's heading
            yield from [f"### {title.capitalize()}", ""]
        yield from _table(parser, actions)
    yield from _epilog(parser.epilog or "", parser.prog)
    for _, sub, _ in subcommands:
        yield from [f"## {sub.prog}", ""]
        yield from _usage(sub)
        yield from _text(sub.description or "", sub.prog)
        for title, actions in _groups(sub):
            if shared.get(title) == [action.option_strings for action in actions]:
                yield f"It also accepts the [{title} options](#{_slug(title)}), before or after its name."
                yield ""
                continue
            yield from [f"**{title.capitalize()}**", ""]
            yield from _table(sub, actions)
        yield from _epilog(sub.epilog or "", sub.prog)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each subcommand, in the order ``--help`` lists them."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(name, sub, summaries.get(name, "")) for name, sub in action.choices.items()]
    return found


def _groups(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[argparse.Action]]]:
    """Each argument group with the actions it shows (no help, no subcommands, nothing hidden)."""
    for group in parser._action_groups:
        actions = [
            action
            for action in group._group_actions
            if action.help != argparse.SUPPRESS
            and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        ]
        if actions:
            yield group.title or "options", actions


def _usage(parser: argparse.ArgumentParser) -> Iterator[str]:
    """The usage lines as a code block, without argparse's ``usage: `` prefix."""
    text = parser.format_usage().removeprefix("usage: ").rstrip()
    yield from ["```text", textwrap.dedent(" " * len("usage: ") + text).strip("\n"), "```", ""]


def _table(parser: argparse.ArgumentParser, actions: list[argparse.Action]) -> Iterator[str]:
    """A table of options: how to write each one, and its help."""
    formatter = parser._get_formatter()
    kind = "Option" if actions[0].option_strings else "Argument"
    yield from [f"| {kind} | Description |", "| --- | --- |"]
    for action in actions:
        forms = formatter._format_action_invocation(action)
        spelled = forms.split(", ") if action.option_strings else [forms]
        usage = ", ".join(f"`{form}`" for form in spelled)
        yield f"| {usage} | {_words(formatter._expand_help(action))} |"
    yield ""


def _text(text: str, prog: str) -> Iterator[str]:
    """A raw description: paragraphs of text; lines indented in them as code blocks."""
    for paragraph in _paragraphs(text.replace("%(prog)s", prog)):
        words: list[str] = []
        code: list[str] = []
        for line in paragraph.splitlines():
            if line.startswith(" "):
                if words:
                    yield from [_words(" ".join(words)), ""]
                    words = []
                code.append(line)
            else:
                if code:
                    yield from _code(code)
                    code = []
                words.append(line.strip())
        if words:
            yield from [_words(" ".join(words)), ""]
        if code:
            yield from _code(code)


def _epilog(text: str, prog: str) -> Iterator[str]:
    """An epilog: each ``label: ...`` paragraph under a heading of its own, examples as code."""
    for paragraph in _paragraphs(text.replace("%(prog)s", prog)):
        label = _LABEL.match(paragraph)
        if label is None:
            yield from _text(paragraph, prog)
            continue
        yield from [f"## {label[1].capitalize()}", ""]
        yield from _text(label[2][:1].upper() + label[2][1:], prog)


def _paragraphs(text: str) -> list[str]:
    return [paragraph for paragraph in re.split(r"\n\s*\n", text.strip("\n")) if paragraph.strip()]


def _code(lines: list[str]) -> list[str]:
    return ["```text", textwrap.dedent("\n".join(lines)), "```", ""]


def _words(text: str) -> str:
    """Help text as markdown: options, variables and djarchive's file names as code, the rest
    escaped (``*``, ``_``, ``<``... are meant literally)."""
    parts = []
    position = 0
    for match in _CODE.finditer(text):
        parts.append(_escape(text[position : match.start()]))
        parts.append(f"`{match[0]}`")
        position = match.end()
    parts.append(_escape(text[position:]))
    return "".join(parts)


def _escape(text: str) -> str:
    """``text`` with markdown's special characters taken literally (inside a table cell, ``|`` too)."""
    return _ESCAPE.sub(r"\\\1", text).replace("<", "&lt;")


def _slug(title: str) -> str:
    """The anchor MkDocs' table of contents gives a heading (toc's default slugify)."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())
