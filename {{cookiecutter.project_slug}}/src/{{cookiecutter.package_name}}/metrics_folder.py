"""The folder where several workers keep their metrics (``metrics.py``), made ready for them.

prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is imported, so
the server process prepares the folder before any worker starts, and imports
nothing of the metrics itself.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FOLDER = "PROMETHEUS_MULTIPROC_DIR"
# What the name of a temporary folder starts with.
PREFIX = "{{ cookiecutter.package_name }}-metrics-"


@contextmanager
def shared_folder(workers: int) -> Iterator[None]:
    """An empty ``PROMETHEUS_MULTIPROC_DIR`` while several workers serve: the folder
    named, emptied of the last run's numbers, or a temporary one. One worker keeps
    its numbers in memory."""
    given = os.environ.get(FOLDER)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
        return
    if workers == 1:
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    os.environ[FOLDER] = str(folder)
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
