"""memshelf.django.MemshelfCache through django.core.cache.caches, in a
small Django project (tests/django_project), every cache API method.
Django's own BaseCacheTests run too (tests/django_compat, from
scripts/test-python.sh)."""

import asyncio
import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
import uuid

import pytest

import django  # noqa: E402

import memshelf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("MEMSHELF_DJANGO_SEGMENT", f"dj-{os.getpid()}-{uuid.uuid4().hex[:8]}")
os.environ["DJANGO_SETTINGS_MODULE"] = "memshelf_site_settings"
sys.path.insert(0, os.path.join(HERE, "django_project"))
django.setup()

from django.core.cache import cache, caches  # noqa: E402
from django.core.cache.backends.base import CacheKeyWarning  # noqa: E402

SEGMENT = os.environ["MEMSHELF_DJANGO_SEGMENT"]


@pytest.fixture(autouse=True)
def fresh():
    cache.clear()
    yield
    cache.clear()


def teardown_module():
    try:
        memshelf.unlink(SEGMENT)
    except memshelf.SegmentNotFound:
        pass


def raw():
    return memshelf.Cache(SEGMENT)


def test_set_get_objects_and_none():
    obj = {"a": [1, 2.5, ("t",)], "when": time.gmtime(0)}
    cache.set("obj", obj)
    assert cache.get("obj") == obj
    cache.set("none", None)
    assert cache.get("none", "default") is None  # a stored None is a hit
    assert cache.has_key("none") is True and "none" in cache
    assert cache.get("missing") is None and cache.get("missing", 5) == 5
    # Keys go through make_and_validate_key: prefix "" and version 1.
    assert raw().get(":1:obj")[:1] == b"\x80"
    cache.set("n", 7)
    assert raw().get(":1:n") == b"7"  # integers as ASCII, for the engine's incr


def test_add_delete_has_key_touch_return_exact_bools():
    assert cache.add("k", 1) is True
    assert cache.add("k", 2) is False
    assert cache.get("k") == 1
    assert cache.touch("k", 10) is True
    assert cache.touch("missing", 10) is False
    assert cache.has_key("k") is True and cache.has_key("missing") is False
    assert cache.delete("k") is True
    assert cache.delete("k") is False


def test_timeouts():
    cache.set("forever", "v", None)
    assert raw().ttl(":1:forever") == float("inf")
    cache.set("default", "v")
    assert 290 < raw().ttl(":1:default") <= 300
    cache.set("zero", "v", 0)
    assert cache.get("zero") is None
    cache.set("neg", "v", -1)
    assert cache.get("neg") is None
    cache.set("gone", "v")
    cache.set("gone", "v2", 0)  # set with 0 deletes
    assert cache.get("gone") is None
    assert cache.add("zero-add", "v", 0) is True and cache.get("zero-add") is None
    cache.set("long", "v", 60 * 60 * 24 * 365)  # over 30 days: still relative
    assert raw().ttl(":1:long") > 60 * 60 * 24 * 364
    cache.set("t", "v", 100)
    assert cache.touch("t", 0) is True and cache.get("t") is None
    cache.set("t", "v", 100)
    assert cache.touch("t", None) is True and raw().ttl(":1:t") == float("inf")
    cache.set("short", "v", 0.2)
    time.sleep(0.4)
    assert cache.get("short") is None and cache.has_key("short") is False
    cache.set("float", "v", 1.5)
    assert 0 < raw().ttl(":1:float") <= 1.5


def test_incr_decr():
    cache.set("n", 41)
    assert cache.incr("n") == 42 and cache.get("n") == 42
    assert cache.decr("n", 50) == -8
    assert cache.incr("n", 10) == 2
    with pytest.raises(ValueError):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")
    assert cache.get("missing") is None  # not created
    cache.set("text", "abc")
    with pytest.raises(TypeError):
        cache.incr("text")
    with pytest.raises(ValueError):
        cache.incr("text")
    cache.set("none", None)
    with pytest.raises(TypeError):
        cache.decr("none")
    cache.set("ttl", 1, 100)
    cache.incr("ttl")
    assert 0 < raw().ttl(":1:ttl") <= 100  # incr keeps the expiry


def test_many():
    assert cache.set_many({"a": 1, "b": {"x": 2}, "c": None}) == []
    assert cache.get_many(["a", "b", "c", "missing"]) == {"a": 1, "b": {"x": 2}, "c": None}
    assert cache.get_many([]) == {}
    cache.delete_many(["a", "c", "missing"])
    assert cache.get_many(["a", "b", "c"]) == {"b": {"x": 2}}
    cache.set_many({"z1": 1, "z2": 2}, 0)
    assert cache.get_many(["z1", "z2"]) == {}
    cache.set_many({"f": 1}, None)
    assert raw().ttl(":1:f") == float("inf")


def test_get_or_set_and_versions():
    assert cache.get_or_set("g", lambda: "computed") == "computed"
    assert cache.get_or_set("g", lambda: "other") == "computed"
    assert cache.get_or_set("g2", 5) == 5
    cache.set("v", "one", version=1)
    cache.set("v", "two", version=2)
    assert cache.get("v") == "one" and cache.get("v", version=2) == "two"
    assert cache.incr_version("v") == 2
    assert cache.get("v", version=2) == "one" and cache.get("v") is None
    assert cache.decr_version("v", version=2) == 1
    assert cache.get("v") == "one"


def test_key_prefix_and_version_isolate():
    other = caches["prefixed"]
    cache.set("k", "default's")
    other.set("k", "prefixed's")
    assert cache.get("k") == "default's" and other.get("k") == "prefixed's"
    assert raw().get("site2:3:k") is not None
    assert raw().ttl("site2:3:k") == float("inf")  # TIMEOUT None
    other.delete("k")
    assert cache.get("k") == "default's"


def test_unpicklable_value_raises_pickle_error():
    class Local:
        pass

    with pytest.raises((pickle.PickleError, AttributeError)):
        cache.set("bad", Local())
    with pytest.raises((pickle.PickleError, TypeError)):
        cache.set("bad", threading.Lock())
    assert cache.get("bad") is None


def test_key_warnings_as_django():
    with pytest.warns(CacheKeyWarning):
        cache.set("a key with spaces", 1)
    with pytest.warns(CacheKeyWarning):
        assert cache.get("a key with spaces") == 1


def test_close_leaves_it_usable_and_clear():
    cache.set("k", 1)
    cache.close()
    assert cache.get("k") == 1
    from django.core import signals

    signals.request_finished.send(sender=None)  # Django closes caches after a request
    assert cache.get("k") == 1
    cache.clear()
    assert cache.get("k") is None


def test_async_api():
    async def main():
        await cache.aset("k", {"a": 1})
        assert await cache.aget("k") == {"a": 1}
        assert await cache.aadd("k", 2) is False
        assert await cache.ahas_key("k") is True
        await cache.aset_many({"n": 1})
        assert await cache.aincr("n", 2) == 3
        assert await cache.adecr("n") == 2
        assert await cache.aget_many(["k", "n"]) == {"k": {"a": 1}, "n": 2}
        assert await cache.atouch("k", 30) is True
        assert await cache.adelete("k") is True
        await cache.adelete_many(["n"])
        assert await cache.aget_or_set("g", 4) == 4
        await cache.aclear()
        assert await cache.aget("g") is None
        await cache.aclose()

    asyncio.run(main())


def test_one_mapping_per_process_and_thread_objects():
    seen = []

    def worker():
        caches["default"].set("t", 1)
        seen.append(caches["default"]._cache)

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({id(c) for c in seen}) == 1  # one memshelf.Cache per process


def incr_worker(n):
    import django as dj

    sys.path.insert(0, os.path.join(HERE, "django_project"))
    dj.setup()
    from django.core.cache import cache as c

    for _ in range(n):
        c.incr("hits")
    return c.get("hits")


def test_incr_is_atomic_across_processes():
    cache.set("hits", 0)
    with mp.get_context("spawn").Pool(3) as pool:
        pool.map(incr_worker, [300] * 3)
    assert cache.get("hits") == 900


def test_bad_configuration():
    from django.core.exceptions import ImproperlyConfigured

    from memshelf.django import MemshelfCache

    with pytest.raises(ImproperlyConfigured, match="unknown memshelf OPTIONS"):
        MemshelfCache(SEGMENT, {"OPTIONS": {"capcity": "1MiB"}})
    with pytest.raises(ImproperlyConfigured, match="LOCATION"):
        MemshelfCache("", {})
