"""Serializers: how cached values become bytes in Redis and back.

``json`` (the default) is the interoperable format: every rendered language reads and
writes it (see docs/wire-format.md). ``msgpack`` is smaller and faster for Python-only
caches. ``pickle`` round-trips arbitrary Python objects, and is therefore a code
execution channel for anyone who can write to Redis; it is only offered *signed*:
payloads carry an HMAC-SHA256 tag that is verified, in constant time, before a single
byte is unpickled. Unsigned or tampered data raises :class:`TamperedDataError`; the
patterns treat it as a miss and log a security warning.

No serialized value starts with the byte 0xC1: it is not valid as the first byte of
UTF-8 text (so of JSON), msgpack reserves it as "never used", and the signed-pickle
envelope starts with ``tgp1``. The patterns rely on this to store lease markers in the
value slot itself (see ``_lease``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, Protocol, runtime_checkable

import msgpack

from .errors import ConfigurationError, SerializationError, TamperedDataError

__all__ = [
    "SERIALIZER_NAMES",
    "JsonSerializer",
    "MsgpackSerializer",
    "Serializer",
    "SignedPickleSerializer",
    "get_serializer",
]

SERIALIZER_NAMES = ("json", "msgpack", "pickle")

# Shorter keys make HMAC-SHA256 guessable in practice; 16 bytes is 128 bits.
_MIN_HMAC_KEY_BYTES = 16
_PICKLE_MAGIC = b"tgp1"
_TAG_BYTES = hashlib.sha256().digest_size


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back; ``loads`` raises SerializationError on bad data."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Compact UTF-8 JSON; NaN and Infinity are refused because other languages reject them."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"value cannot be encoded as JSON: {exc}") from exc
        return text.encode("utf-8")

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SerializationError(f"stored bytes are not valid JSON: {exc}") from exc


class MsgpackSerializer:
    """msgpack with str/bytes kept apart (``use_bin_type``)."""

    name = "msgpack"

    def dumps(self, value: Any) -> bytes:
        try:
            packed: bytes = msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"value cannot be encoded as msgpack: {exc}") from exc
        return packed

    def loads(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise SerializationError(f"stored bytes are not valid msgpack: {exc}") from exc


class SignedPickleSerializer:
    """pickle behind an HMAC-SHA256 tag: ``b"tgp1" + tag(32 bytes) + pickle``."""

    name = "pickle"

    def __init__(self, hmac_key: bytes | str) -> None:
        key = hmac_key.encode("utf-8") if isinstance(hmac_key, str) else hmac_key
        if not isinstance(key, bytes) or len(key) < _MIN_HMAC_KEY_BYTES:
            raise ConfigurationError(
                f"the pickle serializer needs an hmac_key of at least {_MIN_HMAC_KEY_BYTES} "
                "bytes (a secret shared by every process that reads the cache)"
            )
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def dumps(self, value: Any) -> bytes:
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pickling raises whatever the object's reducer raises
            raise SerializationError(f"value cannot be pickled: {exc}") from exc
        return _PICKLE_MAGIC + self._tag(payload) + payload

    def loads(self, data: bytes) -> Any:
        header = len(_PICKLE_MAGIC) + _TAG_BYTES
        if len(data) < header or not data.startswith(_PICKLE_MAGIC):
            raise TamperedDataError("stored bytes are not a signed pickle; refusing to unpickle")
        tag, payload = data[len(_PICKLE_MAGIC) : header], data[header:]
        # compare_digest: a timing side channel must not reveal how much of a forged tag
        # was right.
        if not hmac.compare_digest(tag, self._tag(payload)):
            raise TamperedDataError("signed pickle failed HMAC verification; refusing to unpickle")
        try:
            return pickle.loads(payload)
        except Exception as exc:
            raise SerializationError(f"signed pickle could not be loaded: {exc}") from exc


def get_serializer(name: str, *, hmac_key: bytes | str | None = None) -> Serializer:
    """Return the serializer called ``name``; unknown names fail here, not at first use."""
    if name == "json":
        return JsonSerializer()
    if name == "msgpack":
        return MsgpackSerializer()
    if name == "pickle":
        if hmac_key is None:
            raise ConfigurationError(
                "serializer 'pickle' requires hmac_key: unsigned pickle from a shared cache "
                "would let anyone who can write to Redis run code in this process"
            )
        return SignedPickleSerializer(hmac_key)
    raise ConfigurationError(f"unknown serializer {name!r}; allowed: {', '.join(SERIALIZER_NAMES)}")
