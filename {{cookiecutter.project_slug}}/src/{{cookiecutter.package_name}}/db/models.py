"""Every ``models`` module (or package) below the service's package, imported for
Alembic's autogenerate and the tests (``tests/test_models.py`` fails for a model
defined anywhere else)."""

import importlib
import pkgutil

SERVICE_PACKAGE = __name__.partition(".")[0]


def import_models() -> list[str]:
    """Import every ``models`` module of the service; their names."""
    package = importlib.import_module(SERVICE_PACKAGE)
    names = [
        module.name
        for module in pkgutil.walk_packages(package.__path__, f"{SERVICE_PACKAGE}.")
        if module.name.rpartition(".")[2] == "models"
    ]
    for name in names:
        importlib.import_module(name)
    return names
