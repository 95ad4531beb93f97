{% set is_pg = cookiecutter.database == "postgresql" %}
"""Every model is one that Alembic and the tests see: it lives in a ``models`` module."""

import importlib
import pkgutil
{% if is_pg %}

from sqlalchemy import Column, Integer, make_url
{% endif %}

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


def test_every_relationship_says_how_it_loads() -> None:
    """Loaded lazily, the default, a relationship is queried when an answer reads it: as
    the answer is serialized, after the unit of work (MissingGreenlet on async; on sync
    a query per object, unseen). Say how each loads, in every model, yours too."""
    import_models()
    relationships = {
        f"{mapper.class_.__name__}.{relationship.key}": relationship.lazy
        for mapper in Base.registry.mappers
        for relationship in mapper.relationships
    }
    lazy = [name for name, loading in relationships.items() if loading in ("select", True)]
    assert lazy == [], (
        "declare how these load: relationship(..., lazy='raise') and a selectinload() in the"
        " repository query whose answer needs it, or lazy='selectin' to load it always"
    )
    assert relationships["Item.events"] == "raise"
{% if is_pg %}


def holds_an_id(column: Column[object]) -> bool:
    """An integer primary key, or a column that holds one (a foreign key, or ``*_id``)."""
    return isinstance(column.type, Integer) and (
        column.primary_key or bool(column.foreign_keys) or column.name.endswith("_id")
    )


def test_every_id_is_a_64_bit_identity() -> None:
    """A 32-bit id runs out at 2,147,483,647 rows: ids are ``IdKey`` and the columns
    that hold them ``BigId`` (db/types.py), in every model, yours too."""
    import_models()
    columns = [column for table in Base.metadata.tables.values() for column in table.columns]
    ids = [column for column in columns if holds_an_id(column)]
    dialect = make_url("postgresql://").get_dialect()()

    narrow = [str(column) for column in ids if column.type.compile(dialect=dialect) != "BIGINT"]
    keys = [column for column in ids if column.primary_key]
    not_identities = [str(column) for column in keys if column.identity is None]
    assert narrow == []
    assert not_identities == []
    assert {str(column) for column in keys} >= {"items.id", "item_events.id"}
{% endif %}
