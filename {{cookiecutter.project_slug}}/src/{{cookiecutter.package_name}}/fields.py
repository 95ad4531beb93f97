"""Field types for request and response schemas: what JSON may say, exactly.

pydantic's plain types are lenient (``int`` takes ``true`` and ``"7"``; a ``Decimal``
read from a JSON number was a float first). These accept what their OpenAPI schema
promises, and refuse the rest with a 422, as pydantic's strict ones do (``StrictBool``,
``AwareDatetime``): the contract test holds for every resource that uses them.
"""

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, GetCoreSchemaHandler, WithJsonSchema

# Text the database can store: no NUL (and pydantic refuses unpaired surrogates).
STORABLE_TEXT = r"^[^\x00]*$"

# A name holds something visible, and no control character nor any invisible one that
# makes two names look alike (soft hyphen, zero-width ones, direction marks, the BOM).
_INVISIBLE = r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
NAME_TEXT = rf"^[^{_INVISIBLE}]*[^{_INVISIBLE}\s][^{_INVISIBLE}]*$"


@dataclass(frozen=True)
class UniqueName:
    """``Annotated[str, UniqueName(max_length=100)]``: text that names something uniquely,
    stored in one spelling (NFC, stripped) so that a unique constraint sees look-alikes as
    one name; control and invisible characters refused. Its length is counted as sent (the
    schema's maxLength) and as stored, which composing can lengthen."""

    max_length: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        sent = Annotated[str, Field(min_length=1, max_length=self.max_length, pattern=NAME_TEXT)]
        return AfterValidator(self._one_spelling).__get_pydantic_core_schema__(sent, handler)

    def _one_spelling(self, value: str) -> str:
        stored = unicodedata.normalize("NFC", value).strip()
        if len(stored) > self.max_length:
            raise ValueError(f"composed (NFC), it is longer than {self.max_length} characters")
        return stored


def _json_integer(value: Any) -> Any:
    # JSON's integers, and numbers with nothing after the point (4254.0): not true, not "7".
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


# The bounds come first: after a validator, pydantic would not write them into the schema.
Integer = Annotated[int, Field(ge=-(2**31), le=2**31 - 1), BeforeValidator(_json_integer)]
"""A whole number that a 32-bit ``INTEGER`` column holds, on every database."""

# Up to 8 digits before the point and 2 after: ExactDecimal(10, 2) in a model.
AMOUNT_PATTERN = r"^-?[0-9]{1,8}(\.[0-9]{1,2})?$"


def _amount(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not re.fullmatch(AMOUNT_PATTERN, value):
        raise ValueError('must be a string of up to 8 digits and 2 decimals, such as "12.50"')
    return Decimal(value)


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["12.50"]}),
]
"""An exact decimal, written as a JSON string (``"12.50"``): a JSON number is a float."""
