"""The codec option, get(k, default), len/iter and the batch calls."""

import json
import pickle
import threading

import pytest

import memshelf


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


VALUES = [
    {"a": 1, "b": [1, 2.5, None, True], "é": "ü"},
    [1, 2, 3],
    "text",
    42,
    -1.5,
    None,
    True,
]


@pytest.mark.parametrize("codec", ["pickle", memshelf.codecs.PICKLE])
def test_pickle_round_trips_objects(name, codec):
    c = memshelf.Cache(name, capacity="4MiB", codec=codec)
    objects = [*VALUES, (1, "t"), {1, 2}, b"raw bytes", Point(1, 2), {"nested": {"p": Point(3, 4)}}]
    for i, v in enumerate(objects):
        c.put(f"k{i}", v)
    for i, v in enumerate(objects):
        assert c.get(f"k{i}") == v
        assert type(c.get(f"k{i}")) is type(v)
        assert c[f"k{i}"] == v
    # A stored None is a hit: get's default is not used.
    assert c.get("k5", "default") is None
    assert c.get("missing", "default") == "default"
    # Stored as pickle protocol 5, readable by any process.
    raw = memshelf.Cache(name)
    assert pickle.loads(raw.get("k0")) == objects[0]
    assert raw.get("k0")[:2] == b"\x80\x05"
    assert c.codec is codec
    assert "codec=\"pickle\"" in repr(c)


def test_json_round_trips_and_is_plain_json(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="json")
    for i, v in enumerate(VALUES):
        c.put(f"k{i}", v)
        assert c.get(f"k{i}") == v
    raw = memshelf.Cache(name)
    assert raw.get("k0") == '{"a":1,"b":[1,2.5,null,true],"é":"ü"}'.encode()
    assert json.loads(raw.get("k0")) == VALUES[0]
    assert c.get(b"k2") == "text"
    c.put("t", (1, 2))
    assert c.get("t") == [1, 2]  # JSON has no tuples
    assert c.codec == "json"
    # Integers written by incr are JSON numbers.
    c.incr("n", 5)
    assert c.get("n") == 5


def test_unpicklable_value_is_a_clear_error(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="pickle")
    with pytest.raises(memshelf.CodecError) as e:
        c.put("lock", threading.Lock())
    msg = str(e.value)
    assert "lock" in msg and "pickle" in msg and "cannot encode" in msg
    assert isinstance(e.value, ValueError)
    assert isinstance(e.value.__cause__, TypeError)
    with pytest.raises(memshelf.CodecError) as e:
        c.put("f", lambda: 1)
    assert isinstance(e.value.__cause__, (pickle.PicklingError, AttributeError))
    assert c.get("lock") is None and c.get("f") is None
    with pytest.raises(memshelf.CodecError):
        c.put_many({"ok": 1, "bad": threading.Lock()})
    assert c.get("ok") == 1 and "bad" not in c


def test_json_refuses_what_json_cannot_hold(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="json")
    with pytest.raises(memshelf.CodecError) as e:
        c.put("s", {1, 2})
    assert "json" in str(e.value) and "set" in str(e.value)
    assert isinstance(e.value.__cause__, TypeError)


def test_json_refuses_nan_infinity_and_lone_surrogates_and_keeps_the_old_value(name):
    # Python's json writes NaN and Infinity, which are not JSON (Node's
    # codec: 'json' could not read them back), and a lone surrogate
    # escaped the codec as a bare UnicodeEncodeError.
    c = memshelf.Cache(name, capacity="4MiB", codec="json")
    c.put("k", {"ok": 1})
    for bad in (float("nan"), {"x": float("inf")}, [float("-inf")], "\ud800"):
        with pytest.raises(memshelf.CodecError) as e:
            c.put("k", bad)
        assert "json" in str(e.value)
        assert isinstance(e.value.__cause__, (ValueError, UnicodeEncodeError))
    assert c.get("k") == {"ok": 1}


def test_decoding_bytes_of_another_codec_is_a_codec_error(name):
    raw = memshelf.Cache(name, capacity="4MiB")
    raw.put("k", b"\xff not json")
    for codec in ("json", "pickle"):
        c = memshelf.Cache(name, codec=codec)
        with pytest.raises(memshelf.CodecError) as e:
            c.get("k")
        assert "decode" in str(e.value) and codec in str(e.value)


def test_custom_codec_object(name):
    class Upper:
        name = "upper"

        def __init__(self):
            self.calls = 0

        def dumps(self, v):
            self.calls += 1
            return v.upper().encode()

        def loads(self, b):
            return b.decode().lower() + "!"

    u = Upper()
    c = memshelf.Cache(name, capacity="4MiB", codec=u)
    c.put("k", "abc")
    assert memshelf.Cache(name).get("k") == b"ABC"
    assert c.get("k") == "abc!"
    assert c.codec is u and u.calls == 1

    class Bad:
        def dumps(self, v):
            return 12

        def loads(self, b):
            return b

    with pytest.raises(memshelf.CodecError, match="dumps\\(\\) returned int"):
        memshelf.Cache(name, codec=Bad()).put("k", "v")


@pytest.mark.parametrize("bad", ["yaml", 3, object()])
def test_bad_codec_option(name, bad):
    with pytest.raises((ValueError, TypeError)) as e:
        memshelf.Cache(name, capacity="4MiB", codec=bad)
    assert "codec" in str(e.value)


def test_raw_codec_keeps_bytes_only(name):
    for codec in (None, "raw"):
        c = memshelf.Cache(name, capacity="4MiB", codec=codec)
        assert c.codec == "raw"
        c.put("k", "text")
        assert c.get("k") == b"text"
        with pytest.raises(TypeError):
            c.put("k", {"a": 1})


def test_get_default(cache):
    assert cache.get("nope") is None
    assert cache.get("nope", b"d") == b"d"
    sentinel = object()
    assert cache.get("nope", sentinel) is sentinel
    assert cache.get("nope", default=1) == 1
    cache.put("k", b"")
    assert cache.get("k", b"d") == b""


def test_len_and_iteration_count_live_entries(cache):
    assert len(cache) == 0 and list(cache) == []
    for i in range(10):
        cache.put(f"k{i}", b"v")
    cache.put("short", b"v", ttl=0.05)
    assert len(cache) == 11
    assert sorted(cache) == sorted([f"k{i}".encode() for i in range(10)] + [b"short"])
    import time

    time.sleep(0.15)
    assert len(cache) == 10  # expired entries are not counted
    cache.delete("k0")
    assert len(cache) == 9 and b"k0" not in list(cache)
    cache.clear()
    assert len(cache) == 0 and list(cache) == []
    assert not cache  # __len__ makes an empty cache falsy, like a dict


def test_get_many_and_put_many(name):
    c = memshelf.Cache(name, capacity="4MiB")
    c.put_many({"a": b"1", b"b": "2", "c": bytearray(b"3")}, ttl=60, tags=["t"])
    c.put_many([("d", b"4"), ("e", b"5")])
    c.put_many((f"g{i}", b"x") for i in range(3))
    got = c.get_many(["a", b"b", "c", "d", "e", "missing", "g2"])
    assert got == [b"1", b"2", b"3", b"4", b"5", None, b"x"]
    assert c.get_many(iter(["missing", "a"]), default=b"-") == [b"-", b"1"]
    assert c.get_many([]) == []
    assert 0 < c.ttl("a") <= 60
    c.invalidate_tag("t")
    assert c.get_many(["a", "b", "c", "d"]) == [None, None, None, b"4"]
    with pytest.raises(TypeError):
        c.get_many("abc")  # a single str is not an iterable of keys here
    with pytest.raises(TypeError):
        c.put_many([("a", b"1", "extra")])
    with pytest.raises(TypeError):
        c.put_many({"a": 1})  # raw codec: bytes and str only
    with pytest.raises(memshelf.KeyTooLong):
        c.get_many(["ok", "x" * 5000])
    # every key type get() takes (str and bytes are borrowed, the others
    # copied), a non-ASCII str as its UTF-8 bytes, and a batch much longer
    # than the engine's prefetch pipeline
    c.put("é", b"accent")
    assert c.get_many([bytearray(b"d"), memoryview(b"e"), "é", "é".encode()]) == [b"4", b"5", b"accent", b"accent"]
    with pytest.raises(TypeError, match="key must be str, bytes"):
        c.get_many(["d", 7])
    c.put_many({f"n{i}": str(i).encode() for i in range(0, 300, 2)})
    assert c.get_many([f"n{i}" for i in range(300)]) == [str(i).encode() if i % 2 == 0 else None for i in range(300)]
    # a list is read item by item; a list subclass keeps its own __iter__,
    # and tuples, dict views and generators are iterated
    class Reversed(list):
        def __iter__(self):
            return reversed(list(super().__iter__()))

    assert c.get_many(Reversed(["d", "e", "missing"])) == [None, b"5", b"4"]
    assert c.get_many(("e", "d")) == [b"5", b"4"]
    assert c.get_many({"d": 0, "nope": 0}.keys()) == [b"4", None]
    assert c.get_many(k for k in ["e"]) == [b"5"]
    p = memshelf.Cache(name, codec="pickle")
    p.put_many({"x": {"n": 1}, "y": None})
    missing = object()
    assert p.get_many(["x", "y", "z"], missing) == [{"n": 1}, None, missing]
    c.close()
    with pytest.raises(memshelf.ClosedError):
        c.get_many(["a"])
    with pytest.raises(memshelf.ClosedError):
        c.put_many({"a": b"1"})


def test_never_ttl_overrides_the_segment_default(name):
    c = memshelf.Cache(name, capacity="4MiB", ttl=60)
    c.put("d", b"v")
    assert 0 < c.ttl("d") <= 60
    c.put("n", b"v", ttl=memshelf.NEVER)
    assert c.ttl("n") == float("inf")
    c.touch("d", memshelf.NEVER)
    assert c.ttl("d") == float("inf")
    assert repr(memshelf.NEVER) == "memshelf.NEVER"


def test_get_or_set_with_codec(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="pickle")
    calls = []

    def factory():
        calls.append(1)
        return {"computed": [1, 2]}

    assert c.get_or_set("k", factory) == {"computed": [1, 2]}
    assert c.get_or_set("k", factory) == {"computed": [1, 2]}
    assert len(calls) == 1
    with pytest.raises(memshelf.CodecError):
        c.get_or_set("bad", threading.Lock)
    # The lease was handed back: the next caller leads at once.
    assert c.get_or_set("bad", lambda: 7, lease=30) == 7
