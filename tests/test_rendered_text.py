"""Every supported combination bakes to text that reads as if written by hand.

Each combination of a variant and its wings is baked and checked: exactly the
files of the manifest; no template syntax left, no blank-line scars, no words
run together; ruff's lint and format, as the generated project's own config
has them. Jinja's ``trim_blocks`` removes the newline after a block tag. A tag
at the end of a line of text therefore glues that line to the next
("asyncpgand"), and a conditional between two paragraphs can swallow the
blank line that separated them.
"""

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies

from .conftest import bake
from .matrix import (
    COMBINATIONS,
    COOKIECUTTER,
    DEFAULT_ANSWERS,
    PROJECT_TEMPLATE,
    TEMPLATE_DIR,
    Variant,
    expected_files,
)

# Jinja that survived rendering; GitHub Actions' ${{ }} is legitimate.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter\.")

WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
BLOCK_TAG_LINE = re.compile(r"^\s*\{%-?.*?-?%\}\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def template_files() -> list[Path]:
    return [
        path
        for path in PROJECT_TEMPLATE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]


@functools.cache
def vocabulary() -> frozenset[str]:
    """Every word the template could put into a file: its own text and the answers' text."""
    words: set[str] = set()
    for path in [*template_files(), TEMPLATE_DIR / "cookiecutter.json"]:
        words |= set(WORD.findall(path.read_text().lower()))
    return frozenset(words)


@pytest.mark.parametrize("combination", COMBINATIONS, ids=lambda v: v.id)
def test_every_combination_bakes_to_clean_text(cookies: Cookies, combination: Variant) -> None:
    project = bake(cookies, **combination.context)
    files = {p.relative_to(project).as_posix(): p for p in project.rglob("*") if p.is_file()}
    known = vocabulary()

    assert set(files) == expected_files({**DEFAULT_ANSWERS, **combination.context})
    strangers = {}
    for name, path in files.items():
        text = path.read_text()
        assert not LEFTOVER.search(text), f"{name}: {LEFTOVER.search(text)}"
        assert "\n\n\n\n" not in text, f"{name} has a blank-line scar"
        assert not re.search(r"[ \t]$", text, re.M), f"{name} has trailing whitespace"
        assert "BaseHTTPMiddleware(" not in text
        assert not re.search(r"^from starlette.middleware.base", text, re.M)
        # "py311" is "py" and a version number; "sqlite3and" is two words run together.
        words = set(WORD.findall(text.lower()))
        unknown = {word for word in words - known if word.rstrip("0123456789") not in known}
        if unknown:
            strangers[name] = sorted(unknown)
    assert strangers == {}, "words that are in no template file: run together by a Jinja tag?"
    for check in (["check"], ["format", "--check"]):
        ruff = [sys.executable, "-m", "ruff", *check, "--no-cache", "."]
        result = subprocess.run(ruff, cwd=project, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


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


# A block tag closing a conditional at the end of a line of text: trim_blocks takes the
# newline after it, and the next line (or a paragraph's blank line) with it.
INLINE_BLOCK_END = re.compile(r"^\s*[^\s{].*\{%-?\s*(?:endif|else|elif|endfor)\b[^%]*%\}\s*$")


def test_no_line_of_text_ends_with_a_block_tag() -> None:
    """An inline condition is written ``{{ "..." if ... }}`` where it ends a line."""
    offenders = [
        f"{path.relative_to(PROJECT_TEMPLATE)}:{number}"
        for path in template_files()
        if not path.name.startswith("uv.")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if INLINE_BLOCK_END.match(line) and number < len(path.read_text().splitlines())
    ]

    assert offenders == []


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
