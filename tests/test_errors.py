"""The error tree: stable codes, one HTTP table, lossless wire round trip."""

import pytest

from aimass import errors
from aimass.errors import (
    HTTP_STATUS,
    AimassError,
    DatasetValidationError,
    ErrorCode,
    InvalidArgument,
    NotFound,
    error_from_dict,
)


def all_error_classes() -> list[type[AimassError]]:
    return [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), AimassError)
        and getattr(errors, name) is not AimassError
    ]


def test_every_code_has_an_http_status():
    assert set(HTTP_STATUS) == set(ErrorCode)


@pytest.mark.parametrize("cls", all_error_classes())
def test_round_trip_keeps_class_code_message_and_details(cls):
    original = cls("model 'churn' has no version 7 (latest is 5)", line=3, field="label")
    restored = error_from_dict(original.to_dict())
    assert type(restored) is cls
    assert restored.code == original.code
    assert restored.message == original.message
    assert restored.details == {"line": 3, "field": "label"}


def test_unknown_type_falls_back_to_the_most_general_class_for_the_code():
    restored = error_from_dict({"code": "NOT_FOUND", "type": "Gone", "message": "x"})
    assert type(restored) is NotFound


def test_unknown_code_is_internal():
    restored = error_from_dict({"code": "WHAT", "message": "x"})
    assert restored.code == ErrorCode.INTERNAL


def test_subclasses_are_also_builtin_exceptions_callers_expect():
    assert issubclass(InvalidArgument, ValueError)
    assert issubclass(DatasetValidationError, InvalidArgument)
    assert issubclass(NotFound, LookupError)
    assert DatasetValidationError("x").http_status == 400
