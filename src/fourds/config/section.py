"""The base of every params section: a frozen pydantic dataclass that refuses unknown keys, asks
for every key, then checks the rules relating its fields (`check`); the number types the
sections' fields take; and the helpers their checks raise through."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pydantic
from pydantic import ConfigDict, Field, StrictFloat, StrictInt
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from fourds.errors import ConfigError

PositiveInt = Annotated[StrictInt, Field(gt=0)]
Seed = Annotated[StrictInt, Field(ge=0, lt=2**63)]  # torch's and numpy's generators take it
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
Fraction = Annotated[StrictFloat, Field(ge=0, lt=1)]
PositiveFraction = Annotated[StrictFloat, Field(gt=0, le=1)]
Extent = tuple[PositiveInt, PositiveInt, PositiveInt]  # (time, height, width): [t], [h], [w]
# (low, high) ranges; a class's check() says low <= high (see ordered)
FractionRange = tuple[PositiveFraction, PositiveFraction]
PositiveRange = tuple[PositiveFloat, PositiveFloat]
# A section's key path in the messages of its check() while pydantic validates it: pydantic
# knows where the section is, its validators do not; parse puts the path in.
HERE = "<section>"
SECTION = ConfigDict(extra="forbid")  # every section's pydantic config: unknown keys are refused


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def ordered(config: Any, path: str, name: str) -> None:
    low, high = getattr(config, name)
    require(low <= high, f"{path}.{name}={[low, high]} must be [low, high] with low <= high")


def divisible(config: Any, path: str, name: str, by: str) -> None:
    value, divisor = getattr(config, name), getattr(config, by)
    require(
        value % divisor == 0, f"{path}.{name}={value} is not divisible by {path}.{by}={divisor}"
    )


@dataclass(frozen=True, config=SECTION)
class Section:
    """Base of every section of params.yaml (of `Params`, the root, too): pydantic validates a
    subclass's fields, then calls its `check`."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _every_key(cls, data: Any) -> Any:
        """A mapping (parse's) gives every key, those with a default too. Unknown keys are left
        to extra="forbid", which parse reports before missing ones."""
        if isinstance(data, dict):
            names = [field.name for field in dataclasses.fields(cls)]
            missing = [name for name in names if name not in data]
            if missing and set(data) <= set(names):
                raise PydanticCustomError(
                    "missing_keys", "missing key(s) {missing}", {"missing": missing}
                )
        return data

    @pydantic.model_validator(mode="after")
    def _related(self) -> Section:
        self.check(HERE)
        return self

    def check(self, path: str) -> None:
        """Check the rules that relate several fields, naming keys after `path` (the section's
        key path): none unless a section says otherwise."""
