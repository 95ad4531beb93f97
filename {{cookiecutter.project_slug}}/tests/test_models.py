"""Every model is one that Alembic and the tests see: it lives in a ``models`` module."""

import importlib
import pkgutil

from {{ cookiecutter.package_name }}.db.base import Base
from {{ cookiecutter.package_name }}.db.models import (
    SERVICE_PACKAGE,
    import_models,
)


def test_every_model_lives_in_a_models_module() -> None:
    found = import_models()
    package = importlib.import_module(SERVICE_PACKAGE)
    for module in pkgutil.walk_packages(package.__path__, f"{SERVICE_PACKAGE}."):
        if module.name != f"{SERVICE_PACKAGE}.__main__":
            importlib.import_module(module.name)

    elsewhere = {
        mapper.class_.__qualname__: mapper.class_.__module__
        for mapper in Base.registry.mappers
        if not any(mapper.class_.__module__.startswith(name) for name in found)
    }
    assert elsewhere == {}, "move these models into a models module (see db/models.py)"
    assert f"{SERVICE_PACKAGE}.items.models" in found
