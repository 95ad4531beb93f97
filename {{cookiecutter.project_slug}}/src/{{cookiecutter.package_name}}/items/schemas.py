"""What the API accepts and returns for items."""

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..fields import STORABLE_TEXT, UniqueName
from .models import NAME_MAX_LENGTH

Name = Annotated[str, UniqueName(max_length=NAME_MAX_LENGTH), Field(examples=["Widget"])]
Description = Annotated[
    str | None, Field(max_length=10_000, pattern=STORABLE_TEXT, examples=["A small widget."])
]


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


class ItemEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str
    at: datetime


class ItemHistory(ItemRead):
    """An item with what happened to it, oldest first."""

    events: list[ItemEventRead]
