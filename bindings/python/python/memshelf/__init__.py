"""memshelf: a shared-memory key-value cache for every process on a host.

    >>> import memshelf
    >>> cache = memshelf.Cache("users", capacity="256MiB")   # create or attach
    >>> cache.put("user:42", b'{"name": "Ada"}', ttl=300)
    >>> cache.get("user:42")
    b'{"name": "Ada"}'

Every process that opens the same name shares the same entries. See the
README of the project for the semantics (TTLs, tags, get_or_set leases).
"""

from ._errors import *  # noqa: F401,F403  (defined before the native module uses them)
from ._errors import __all__ as _error_names
from ._memshelf import (  # noqa: F401
    LAYOUT_VERSION,
    MAX_KEY_LEN,
    NEVER,
    FillLease,
    __version__,
    invalidation_message,
    parse_size,
    unlink,
)
from ._cache import Cache, Memoized
from ._reports import DumpReport, LoadReport, Stats
from . import codecs

__all__ = [
    "Cache",
    "FillLease",
    "Memoized",
    "Stats",
    "DumpReport",
    "LoadReport",
    "codecs",
    "unlink",
    "parse_size",
    "invalidation_message",
    "LAYOUT_VERSION",
    "MAX_KEY_LEN",
    "NEVER",
    "__version__",
    *_error_names,
]
