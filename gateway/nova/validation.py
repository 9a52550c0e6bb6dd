"""Request-body validation exactly as Nova 34 performs it, with Nova's error messages.

Owns the compiled validators (Nova's _SchemaValidator: Draft 2020-12, Nova's formats and
numeric-string minimum/maximum) and the message text; it must never choose schemas itself
(the catalogue does) nor accept a body Nova would refuse, or refuse one Nova accepts.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator

from gateway.nova import schemas
from gateway.nova.catalogue import ACTIONS, ActionSpec
from gateway.nova.faults import Fault
from gateway.nova.types import Version

# nova.version.support_string() when no "release" file overrides it; Nova answers this
# 500 when a format checker itself crashes (e.g. non-ASCII text in a base64 field).
_NOVA_SUPPORT = "Please contact the administrator"


class InvalidName(Exception):
    """nova.exception.InvalidName: its text replaces the whole validation message."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"An invalid 'name' value was provided. The name must be: {reason}")


# --- Nova's format checkers (nova/api/validation/validators.py) ----------------------
# jsonschema's stock checkers (ipv4, ipv6, ...) stay, as with Nova's FormatChecker().

_FORMAT_CHECKER = FormatChecker()
_NAME_PATTERN = re.compile(schemas.VALID_NAME_REGEX)


@_FORMAT_CHECKER.checks("base64")
def _validate_base64_format(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    # Nova encodes to UTF-8 then oslo decodes as ASCII *outside* its try: non-ASCII
    # text raises UnicodeDecodeError (lone surrogates UnicodeEncodeError), i.e. a 500.
    encoded = instance.encode("utf-8").decode("ascii")
    try:
        base64.b64decode(encoded)
    except binascii.Error:
        return False
    return True


@_FORMAT_CHECKER.checks("uuid")
def _validate_uuid_format(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    return _is_uuid_like(instance)


def _is_uuid_like(value: str) -> bool:
    """oslo_utils.uuidutils.is_uuid_like: any spelling uuid.UUID accepts, round-tripped."""
    try:
        canonical = str(uuid.UUID(value)).replace("-", "")
    except (TypeError, ValueError, AttributeError):
        return False
    loose = value.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "").lower()
    return canonical == loose


@_FORMAT_CHECKER.checks("name", InvalidName)
def _validate_name(instance: object) -> bool:
    # Non-strings fail too (Nova's TypeError branch), though 'type' reports them first.
    if isinstance(instance, str) and _NAME_PATTERN.search(instance):
        return True
    raise InvalidName(schemas.VALID_NAME_REASON)


# --- Nova's numeric-string minimum/maximum -------------------------------------------


def _number_from_str(instance: Any) -> int | float | None:
    # Exactly Nova's conversions: int() first (so 1.9 -> 1 and True -> 1), then float();
    # anything else they raise (OverflowError) escapes, as it does in Nova.
    try:
        return int(instance)
    except (ValueError, TypeError):
        pass
    try:
        return float(instance)
    except (ValueError, TypeError):
        return None


def _minimum(
    validator: Validator, minimum: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    number = _number_from_str(instance)
    if number is None:
        return iter(())
    return _ORIGINAL["minimum"](validator, minimum, number, schema) or iter(())


def _maximum(
    validator: Validator, maximum: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    number = _number_from_str(instance)
    if number is None:
        return iter(())
    return _ORIGINAL["maximum"](validator, maximum, number, schema) or iter(())


_ORIGINAL: Mapping[str, Any] = Draft202012Validator.VALIDATORS
# Nova's _SchemaValidator: Draft202012Validator with minimum/maximum replaced.
# (types-jsonschema leaves extend() unannotated.)
_NovaValidator: type[Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"minimum": _minimum, "maximum": _maximum}
)


# --- compiled validators: built once, for every schema the catalogue names -------------

_COMPILED: dict[int, tuple[Mapping[str, Any], Validator]] = {}


def _compiled(schema: Mapping[str, Any]) -> Validator:
    cached = _COMPILED.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator: Validator = _NovaValidator(schema, format_checker=_FORMAT_CHECKER)
    _COMPILED[id(schema)] = (schema, validator)
    return validator


def _compile_catalogue() -> None:
    for spec in ACTIONS:
        for schema_range in spec.schemas:
            if schema_range.schema is not None:
                _compiled(schema_range.schema)


_compile_catalogue()


# --- the public gate ------------------------------------------------------------------


def validate_action(spec: ActionSpec, version: Version, body: dict[str, Any]) -> None:
    """Validate the whole action body (the dict with the single action key) as Nova would
    at ``version``; raise Fault(400, <Nova's message>, reason="schema") on failure.
    No-op where Nova registers no schema."""
    schema_range = spec.schema_for(version)
    if schema_range is None or schema_range.schema is None:
        return
    message = first_error(schema_range.schema, body)
    if message is not None:
        raise Fault(400, message, reason="schema")


# Bodies already found valid, by (action, version, the body's exact bytes): most calls
# repeat a handful of small bodies ({"lock": null}, {"reboot": {"type": "SOFT"}}), and
# validity is a function of exactly these (the bytes parse one way only). Only small
# bodies, and only valid ones, are remembered; forgotten all at once when full.
_VALID_MAX_BODY = 512
_VALID_REMEMBERED = 4096
_valid: set[tuple[str, Version, bytes]] = set()


def validate_action_bytes(
    spec: ActionSpec, version: Version, raw: bytes, body: dict[str, Any]
) -> None:
    """validate_action for ``body`` parsed from ``raw``, remembering small valid bodies."""
    key = (spec.key, version, raw)
    if key in _valid:
        return
    validate_action(spec, version, body)
    if len(raw) <= _VALID_MAX_BODY:
        if len(_valid) >= _VALID_REMEMBERED:
            _valid.clear()
        _valid.add(key)


def first_error(schema: Mapping[str, Any], body: Any) -> str | None:
    """Nova's message for the FIRST error (validator.validate), or None when valid."""
    try:
        error = next(iter(_compiled(schema).iter_errors(body)), None)
    except TypeError as exc:
        # Nova's _SchemaValidator turns a TypeError raised while validating into a 400.
        return str(exc)
    except Exception as exc:
        # Escapes Nova's validator; its expected_errors wrapper answers 500.
        raise Fault(500, _unexpected(exc), reason="schema") from exc
    return None if error is None else nova_message(error)


def nova_message(error: ValidationError) -> str:
    """The text Nova puts in the 400 body for ``error`` (request bodies)."""
    if isinstance(error.cause, InvalidName):
        return str(error.cause)
    if error.path:
        return (
            f"Invalid input for field/attribute {error.path[-1]}. "
            f"Value: {error.instance}. {error.message}"
        )
    return error.message


def _unexpected(exc: Exception) -> str:
    return f"Unexpected API Error. {_NOVA_SUPPORT}\n{type(exc)}"
