"""The README's generated tables, each between its ``<!-- name:start -->`` and
``<!-- name:end -->`` lines (the benchmarks' and the sizes')."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def table_in_readme(name: str) -> str:
    """What the README holds between the ``name`` markers (empty without them)."""
    start, end = markers(name)
    text = README.read_text()
    if start not in text or end not in text:
        return ""
    return text.partition(start)[2].partition(end)[0].removeprefix("\n")


def update_readme(table: str, name: str) -> None:
    """Put ``table`` into the README between its ``name`` markers."""
    start, end = markers(name)
    text = README.read_text()
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        README.write_text(f"{before}{start}\n{table}{end}{after}")
