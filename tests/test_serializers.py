"""Serializers: round trips, unknown names refused, forged pickle never unpickled."""

from __future__ import annotations

import pickle

import pytest
from templategen.reference.errors import ConfigurationError, SerializationError, TamperedDataError
from templategen.reference.serializers import SERIALIZER_NAMES, get_serializer

KEY = b"k" * 32
VALUES = [None, 0, "", [], {}, False, 1.5, "naïve 🐍", {"a": [1, 2, {"b": None}]}]


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_every_serializer_round_trips_falsy_and_nested_values(name: str, value: object) -> None:
    ser = get_serializer(name, hmac_key=KEY)
    assert ser.loads(ser.dumps(value)) == value


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
def test_no_serialized_value_starts_with_the_lease_byte(name: str) -> None:
    ser = get_serializer(name, hmac_key=KEY)
    for value in [*VALUES, -1, 2**40, b"\xc1" if name != "json" else "\xc1"]:
        assert not ser.dumps(value).startswith(b"\xc1")


def test_unknown_serializer_is_refused_at_construction_naming_the_allowed_ones() -> None:
    with pytest.raises(ConfigurationError, match="json, msgpack, pickle"):
        get_serializer("yaml")


def test_pickle_without_hmac_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="hmac_key"):
        get_serializer("pickle")


def test_pickle_with_short_hmac_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="16 bytes"):
        get_serializer("pickle", hmac_key=b"short")


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('unpickled a forgery')",))


def test_unsigned_pickle_is_never_unpickled() -> None:
    ser = get_serializer("pickle", hmac_key=KEY)
    with pytest.raises(TamperedDataError):
        ser.loads(pickle.dumps(_Boom()))


def test_tampered_signed_pickle_is_never_unpickled() -> None:
    ser = get_serializer("pickle", hmac_key=KEY)
    good = ser.dumps({"x": 1})
    forged = good[:36] + pickle.dumps(_Boom())
    with pytest.raises(TamperedDataError):
        ser.loads(forged)
    other_key = get_serializer("pickle", hmac_key=b"o" * 32)
    with pytest.raises(TamperedDataError):
        other_key.loads(good)


def test_json_refuses_nan_because_other_languages_cannot_read_it() -> None:
    with pytest.raises(SerializationError):
        get_serializer("json").dumps(float("nan"))


def test_corrupt_bytes_raise_serialization_error() -> None:
    for name in ("json", "msgpack"):
        with pytest.raises(SerializationError):
            get_serializer(name).loads(b"\xff\xfe{")
