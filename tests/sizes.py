"""How big each bake is: lines under ``src/`` and ``tests/`` (comments and docstrings
included), settings and files, of every variant with no wing and with every wing.

    python3 tasks.py sizes    writes the table into the README, between its sizes markers

``tests/test_bake.py`` checks that the README's table is the template's as it is.
"""

import re
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

from .matrix import TEMPLATE_DIR, VARIANTS, Variant
from .readme import update_readme

# A setting in .env.example: NAME=value, or one left unset as "# NAME=value".
SETTING = re.compile(r"^(?:# )?[A-Z][A-Z0-9_]*=", re.MULTILINE)
# The bake with no wing that the README's aim is about: at most 1,950 lines under src/.
AIM = ("postgresql-async-dependency", 1950)


def lines_under(folder: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in folder.rglob("*") if path.is_file())


def sizes(variant: Variant, output_dir: Path) -> dict[str, int]:
    baked = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context=variant.context,
        output_dir=str(output_dir / variant.id),
    )
    project = Path(baked)
    return {
        "src": lines_under(project / "src"),
        "tests": lines_under(project / "tests"),
        "settings": len(SETTING.findall((project / ".env.example").read_text())),
        "files": sum(1 for path in project.rglob("*") if path.is_file()),
    }


def table(output_dir: Path) -> str:
    """The README's table of every variant's bakes with no wing and with every wing."""
    lines = [
        "| variant | wings | lines under `src/` | under `tests/` | settings | files |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for variant in VARIANTS:
        for bake, wings in (("none", ()), ("every", variant.possible_wings)):
            counted = sizes(variant.with_wings(wings), output_dir)
            cells = [f"{counted[key]:,}" for key in ("src", "tests", "settings", "files")]
            lines.append(f"| {variant.id} | {bake} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sizes-") as tmp:
        text = table(Path(tmp))
    update_readme(text, "sizes")
    print(text, end="")


if __name__ == "__main__":
    main()
