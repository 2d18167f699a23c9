"""Every feature of memshelf's Python API, as a user writes it.

scripts/test-python.sh type-checks this file with mypy --strict and pyright
(strict) against the installed wheel, and runs it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from typing import Any

import memshelf
import redis
import redis.asyncio
from memshelf.django import MemshelfCache
from memshelf.redis import AsyncNearCache, NearCache


class UpperCodec:
    """A user codec: any object with dumps() and loads()."""

    name = "upper"

    def dumps(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def loads(self, data: bytes) -> str:
        return data.decode()


def main() -> None:
    name = f"typed-example-{os.getpid()}"
    assert memshelf.parse_size("1MiB") == 1 << 20

    # Raw codec: bytes and str in, bytes out.
    with memshelf.Cache(name, capacity="8MiB", ttl=300, ttl_jitter=0.1, mode=0o600) as raw:
        raw.put("user:1", b'{"name": "Ada"}', ttl=60, tags=["team:7"])
        raw["user:2"] = "text"
        value: bytes | None = raw.get("user:1")
        assert value == b'{"name": "Ada"}'
        assert raw.get("missing", b"default") == b"default"
        assert raw["user:2"] == b"text" and "user:2" in raw
        del raw["user:2"]
        assert raw.add("once", b"1") and not raw.add("once", b"2")
        assert raw.delete("once")
        hits: int = raw.incr("hits", 2)
        assert hits == 2
        remaining = raw.ttl("user:1")
        assert remaining is not None and 0 < remaining <= 66
        raw.put("forever", b"v", ttl=memshelf.NEVER)
        assert raw.ttl("forever") == math.inf
        assert raw.touch("user:1", 120)
        report: bytes = raw.get_or_set("report", lambda: b"computed", ttl=30, lease=10, grace=5, negative_ttl=1)
        assert report == b"computed"
        raw.put_many({"a": b"1", "b": b"2"}, ttl=60)
        raw.put_many([("c", b"3")])
        many: list[Any] = raw.get_many(["a", "b", "c", "nope"])
        assert many == [b"1", b"2", b"3", None]
        keys: list[bytes] = raw.keys(prefix="user:")
        assert keys == [b"user:1"]
        assert len(raw) == len(list(raw)) == len(raw.keys())
        for key in raw:
            assert isinstance(key, bytes)
        raw.invalidate_tag("team:7")
        assert raw.get("user:1") is None
        assert raw.delete_prefix("a") == 1
        stats: memshelf.Stats = raw.stats()
        assert stats["capacity_bytes"] == raw.capacity and raw.max_value_size > 0
        p99: int | None = stats["get_p99_ns"]
        assert p99 is None or p99 > 0
        share: float = stats["hot_key_share"]
        assert 0.0 <= share <= 1.0
        hot: list[tuple[bytes, int]] = raw.hot_keys(3)
        assert all(isinstance(k, bytes) for k, _ in hot)
        dump_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{name}.dump")
        dumped: memshelf.DumpReport = raw.dump(dump_path)
        loaded: memshelf.LoadReport = raw.load(dump_path)
        assert loaded["complete"] and loaded["records"] == dumped["entries"]
        os.remove(dump_path)
        assert raw.codec == "raw" and raw.name == name and not raw.closed
        raw.clear()
    assert raw.closed

    # Codecs: any Python object.
    objects = memshelf.Cache(name, codec="pickle")
    objects.put("obj", {"when": (2024, 1, 1), "tags": {"a", "b"}})
    assert objects.get("obj") == {"when": (2024, 1, 1), "tags": {"a", "b"}}
    try:
        objects.put("lock", asyncio.Lock)  # a class pickles by reference: fine
        objects.put("bad", lambda: 1)
    except memshelf.CodecError as e:
        assert e.__cause__ is not None
    as_json = memshelf.Cache(name, codec="json")
    as_json.put("doc", {"n": [1, 2]})
    assert json.loads(memshelf.Cache(name).get("doc")) == {"n": [1, 2]}
    custom = memshelf.Cache(name, codec=UpperCodec())
    custom.put("shout", "hello")
    assert custom.get("shout") == "HELLO"
    assert memshelf.codecs.PICKLE.loads(memshelf.codecs.PICKLE.dumps(1)) == 1

    # memoize, sync and async.
    @objects.memoize(ttl=60)
    def square(x: int) -> int:
        return x * x

    def profile_key(user_id: int) -> str:
        return f"profile:{user_id}"

    @objects.memoize(ttl=60, key=profile_key)
    async def profile(user_id: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"id": user_id}

    assert square(4) == 16 and square(4) == 16
    assert square.invalidate(4) and isinstance(square.cache_key(4), str)

    # asyncio.
    async def run() -> None:
        await objects.aput("k", [1, 2], ttl=10)
        assert await objects.aget("k") == [1, 2]
        assert await objects.aget("missing", 0) == 0

        async def fetch() -> dict[str, str]:
            await asyncio.sleep(0.01)
            return {"fetched": "yes"}

        results = await asyncio.gather(*(objects.aget_or_set("fetch", fetch, ttl=30) for _ in range(10)))
        assert results == [{"fetched": "yes"}] * 10
        assert await profile(7) == {"id": 7}

    asyncio.run(run())

    # Django's cache API (normally built by django.core.cache.caches).
    django_cache = MemshelfCache(name, {"TIMEOUT": 60, "OPTIONS": {"capacity": "8MiB"}})
    django_cache.set("page", {"html": "<p>"})
    assert django_cache.get("page") == {"html": "<p>"}

    # Read-through helpers for Redis (nothing connects here: the clients
    # connect at their first command).
    raw = memshelf.Cache(name)
    near = NearCache(redis.Redis(), raw, default_ttl=60, lease=5, negative_ttl=1)
    anear = AsyncNearCache(redis.asyncio.Redis(), raw, default_ttl=memshelf.NEVER)
    assert near.cache is raw and anear.cache is raw and isinstance(near.redis, redis.Redis)

    def read_through() -> int:
        got: bytes | None = near.get("user:1")
        many: list[bytes | None] = near.get_many(["user:1", b"user:2"])
        ok: bool | None = near.set("user:1", b"Ada", ex=60)
        gone: int = near.delete("user:1", "user:2")
        return len(got or b"") + len(many) + int(bool(ok)) + gone

    async def aread_through() -> int:
        got: bytes | None = await anear.get("user:1")
        many: list[bytes | None] = await anear.get_many(["user:1"])
        ok: bool | None = await anear.set(b"user:1", "Ada", px=60_000, nx=True)
        gone: int = await anear.delete("user:1")
        return len(got or b"") + len(many) + int(bool(ok)) + gone

    assert callable(read_through) and callable(aread_through)

    msg: bytes = memshelf.invalidation_message("del", keys=["user:1"], cache=name, origin="example", seq=1)
    assert json.loads(msg)["op"] == "del"
    assert memshelf.LAYOUT_VERSION > 0 and memshelf.MAX_KEY_LEN == 4096 and memshelf.__version__
    try:
        memshelf.Cache("no-such-segment-" + name, create=False)
    except memshelf.SegmentNotFound:
        pass
    objects.close()
    try:
        objects.get("k")
    except memshelf.ClosedError:
        pass
    memshelf.unlink(name)
    print("typed_usage: ok")


if __name__ == "__main__":
    main()
