"""The built-in codecs: ``Cache(..., codec="pickle")`` and ``codec="json"``.

A codec is any object with ``dumps(value) -> bytes | str`` and
``loads(data: bytes) -> value``; these two are the ones named by a string.
"""

import functools
import json
import pickle
from typing import Any


class PickleCodec:
    """Any picklable object, with pickle protocol 5 (every Python >= 3.8
    reads it). Only open segments that you trust with this codec: loading a
    pickle can run code, and anyone who can write the segment chooses what
    it loads (segments are 0o600 and owner-checked by default)."""

    name = "pickle"

    def __init__(self) -> None:
        self.dumps = functools.partial(pickle.dumps, protocol=5)
        self.loads = pickle.loads

    def __repr__(self) -> str:
        return "memshelf.codecs.PICKLE"


class JsonCodec:
    """JSON values (dict, list, str, int, float, bool, None), stored as
    compact UTF-8 JSON, so other languages can read them (Node's
    ``codec: 'json'``). Tuples come back as lists, non-str dict keys as str.
    NaN, infinities and lone surrogates are refused (``CodecError``): JSON
    has no way to write them."""

    name = "json"

    def __init__(self) -> None:
        # allow_nan=False: NaN and Infinity are not JSON (other languages'
        # parsers refuse them), so such a value is a CodecError.
        self._encode = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode

    def dumps(self, value: Any) -> bytes:
        # Encoded here, so a lone surrogate is this codec's error too.
        return self._encode(value).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "memshelf.codecs.JSON"


PICKLE = PickleCodec()
JSON = JsonCodec()

__all__ = ["PickleCodec", "JsonCodec", "PICKLE", "JSON"]
