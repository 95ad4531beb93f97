"""What the API accepts and returns for items."""

from typing import Annotated, Self

from fastapi import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..db.engine import MAX_INTEGER
from ..fields import STORABLE_TEXT
from .models import NAME_MAX_LENGTH

Name = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=STORABLE_TEXT, examples=["Widget"]),
]
Description = Annotated[
    str | None, Field(max_length=10_000, pattern=STORABLE_TEXT, examples=["A small widget."])
]
# What the id column can hold: a larger id names no item.
ItemId = Annotated[int, Path(ge=1, le=MAX_INTEGER)]
# What OFFSET takes: a 64-bit integer.
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]
# The ETags of the item as the client last saw it (or *): a change is refused (412) if
# the item changed since. A value that names no ETag at all fails the same way.
IfMatch = Annotated[str | SkipJsonSchema[None], Header(examples=['"1"'])]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = None


class ItemUpdate(BaseModel):
    """A partial update: only the fields present in the request change."""

    model_config = ConfigDict(extra="forbid")

    # Absent means "unchanged"; null is refused, so the schema does not offer it.
    name: Name | SkipJsonSchema[None] = None
    description: Description = None

    @model_validator(mode="after")
    def name_is_not_null(self) -> Self:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
