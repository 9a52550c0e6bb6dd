"""Request bodies checked as Nova's _SchemaValidator checks them (nova/api/validation/
validators.py): jsonschema's Draft 2020-12 with Nova's formats and numeric strings.

Owns the validator, Nova's format checks and the 400 text of the first error; it must
never choose a schema (action_schemas.py and schemas.py do) nor import the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, cast

import jsonschema
import jsonschema.protocols
from oslo_serialization import base64 as oslo_base64
from oslo_utils import uuidutils

from novasim.faults import Fault, unexpected
from novasim.parameter_types import NAME_REASON, NAME_REGEX

_FORMATS = jsonschema.FormatChecker()  # jsonschema's own ipv4/ipv6 stay, as in Nova


class InvalidName(Exception):
    """nova.exception.InvalidName: its text replaces the whole validation message."""


@_FORMATS.checks("name", InvalidName)
def _name(instance: object) -> bool:
    if isinstance(instance, str) and re.search(NAME_REGEX, instance):
        return True
    raise InvalidName(f"An invalid 'name' value was provided. The name must be: {NAME_REASON}")


@_FORMATS.checks("uuid")
def _uuid(instance: object) -> bool:
    return not isinstance(instance, str) or uuidutils.is_uuid_like(instance)


@_FORMATS.checks("base64")
def _base64(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    # As Nova: the text is encoded to UTF-8 and oslo decodes it as ASCII outside the
    # try, so non-ASCII text raises (a 500), while bad padding is a plain False.
    try:
        oslo_base64.decode_as_bytes(instance.encode("utf-8"))
    except TypeError:
        return False
    return True


def _as_number(instance: Any) -> int | float | None:
    """Nova's _number_from_str: int() first, then float(); None when neither takes it."""
    for convert in (int, float):
        try:
            return convert(instance)
        except (ValueError, TypeError):
            continue
    return None


def _numeric(keyword: str) -> Callable[..., Iterator[jsonschema.ValidationError] | None]:
    stock = jsonschema.Draft202012Validator.VALIDATORS[keyword]

    def check(validator: Any, bound: Any, instance: Any, schema: Any) -> Any:
        number = _as_number(instance)
        return None if number is None else stock(validator, bound, number, schema)

    return check


# The jsonschema stubs leave extend() unannotated; like create() it returns a validator class.
_extend = cast(Callable[..., type[jsonschema.protocols.Validator]], jsonschema.validators.extend)
_NovaValidator = _extend(
    jsonschema.Draft202012Validator,
    {"minimum": _numeric("minimum"), "maximum": _numeric("maximum")},
)


class Checker:
    """One schema, compiled once, judging bodies as Nova's validator does."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = _NovaValidator(schema, format_checker=_FORMATS)

    def check(self, body: Any) -> None:
        """Raise Nova's 400 for the first error of ``body`` (its 500 where Nova's validator
        itself crashes); return when the body is valid."""
        try:
            error = next(iter(self._validator.iter_errors(body)), None)
        except TypeError as exc:  # Nova turns a TypeError raised while validating into a 400
            raise Fault(400, str(exc)) from None
        except Exception as exc:  # escapes Nova's validator: expected_errors answers 500
            raise unexpected(_printed_class(exc)) from None
        if error is None:
            return
        if isinstance(error.cause, InvalidName):
            raise Fault(400, str(error.cause))
        if error.path:
            raise Fault(
                400,
                f"Invalid input for field/attribute {error.path[-1]}. "
                f"Value: {error.instance}. {error.message}",
            )
        raise Fault(400, error.message)


def _printed_class(exc: Exception) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
