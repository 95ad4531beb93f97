"""Rendered text reads as if written by hand: no words run together, no paragraphs merged.

Jinja's ``trim_blocks`` removes the newline after a block tag. A tag at the
end of a line of text therefore glues that line to the next ("asyncpgand"),
and a conditional between two paragraphs can swallow the blank line that
separated them.
"""

import re
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies

from .conftest import bake
from .matrix import COOKIECUTTER, PROJECT_TEMPLATE, TEMPLATE_DIR, VARIANTS, Variant

WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
BLOCK_TAG_LINE = re.compile(r"^\s*\{%-?.*?-?%\}\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def template_files() -> list[Path]:
    return [
        path
        for path in PROJECT_TEMPLATE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]


def vocabulary() -> set[str]:
    """Every word the template could put into a file: its own text and the answers' text."""
    words: set[str] = set()
    for path in [*template_files(), TEMPLATE_DIR / "cookiecutter.json"]:
        words |= set(WORD.findall(path.read_text().lower()))
    return words


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_no_words_run_together(cookies: Cookies, variant: Variant) -> None:
    project = bake(cookies, **variant.context)
    known = vocabulary()

    strangers = {}
    for path in project.rglob("*"):
        if path.is_file():
            words = set(WORD.findall(path.read_text().lower()))
            # "py311" is "py" and a version number; "sqlite3and" is two words run together.
            unknown = {word for word in words - known if word.rstrip("0123456789") not in known}
            if unknown:
                strangers[path.relative_to(project).as_posix()] = sorted(unknown)

    assert strangers == {}, "words that are in no template file: run together by a Jinja tag?"


def is_prose(line: str) -> bool:
    """A line of a Markdown paragraph (not a table row, list item, heading or blank)."""
    stripped = line.strip()
    return bool(stripped) and not line.startswith((" ", "|", "-", "*", "#", ">", "<!--"))


def merged_paragraphs(lines: list[str]) -> list[int]:
    """Line numbers of conditionals whose text touches the prose around them.

    A conditional block between paragraphs must keep blank lines on both sides
    of what it renders, whichever branch renders; otherwise it glues
    paragraphs together, or renders a paragraph broken mid-sentence. (Inside a
    paragraph, put the condition inline, on the line it changes.)
    """
    tag = re.compile(r"^\s*\{%-?\s*(if|elif|else|endif)\b")
    found = []
    in_fence = False
    stack: list[tuple[int, str, list[list[str]]]] = []  # (line, text before, branches)
    previous = ""  # the last line of text, outside tags
    for number, line in enumerate(lines, start=1):
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else tag.match(line)
        if match is None:
            if not BLOCK_TAG_LINE.match(line):
                if stack:
                    stack[-1][2][-1].append(line)
                previous = line
            continue
        keyword = match.group(1)
        if keyword == "if":
            stack.append((number, previous, [[]]))
        elif keyword in {"elif", "else"} and stack:
            stack[-1][2].append([])
        elif keyword == "endif" and stack:
            start, before, branches = stack.pop()
            after = next((text for text in lines[number:] if not BLOCK_TAG_LINE.match(text)), "")
            for branch in branches:
                if branch and (
                    (is_prose(before) and is_prose(branch[0]))
                    or (is_prose(branch[-1]) and is_prose(after))
                ):
                    found.append(start)
                    break
            if stack:
                stack[-1][2][-1].extend(branches[0])
    return found


@pytest.mark.parametrize(
    "path",
    [path for path in template_files() if path.suffix == ".md"],
    ids=lambda path: path.relative_to(PROJECT_TEMPLATE).as_posix(),
)
def test_no_paragraphs_merge_around_block_tags(path: Path) -> None:
    assert merged_paragraphs(path.read_text().splitlines()) == []


def test_async_and_await_have_one_spelling() -> None:
    """``{{ cookiecutter.__async }}`` and ``{{ cookiecutter.__await }}``, nowhere anything else."""
    other_spellings = re.compile(r"""["']async ["'] if|["']await ["'] if|set aw\b""")
    offenders = [
        path.relative_to(PROJECT_TEMPLATE).as_posix()
        for path in template_files()
        if other_spellings.search(path.read_text())
    ]

    assert offenders == []
    assert COOKIECUTTER["__async"].startswith("{{ 'async ' if")
