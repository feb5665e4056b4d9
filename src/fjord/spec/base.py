"""Shared pydantic configuration and constrained types for fjord's spec models."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """A strict, immutable model: unknown fields are errors; YAML keys are camelCase."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        use_enum_values=True,
    )


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
"""A Kubernetes DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters."""

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
_SUFFIX: dict[str, Decimal | int] = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity_value(text: str) -> Decimal:
    """The numeric value of a Kubernetes quantity (``"100m"`` → 0.1), for comparisons."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 100m, 0.5, 256Mi)")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except ArithmeticError:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None
    if suffix[:1] in ("e", "E"):
        return base * Decimal(10) ** int(suffix[1:])
    return base * Decimal(_SUFFIX[suffix])


def _quantity_text(value: object) -> object:
    # YAML turns `cpu: 1` into an int; Kubernetes accepts both, we normalise to a string.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return format(value, "g") if isinstance(value, float) else str(value)
    return value


def _check_quantity(value: str) -> str:
    quantity_value(value)
    return value


Quantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(_check_quantity)]
"""A Kubernetes resource quantity such as ``250m`` or ``512Mi`` (numbers are accepted)."""
