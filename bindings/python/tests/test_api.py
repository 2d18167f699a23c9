import math
import os
import time

import pytest

import memshelf


def test_put_get_types(cache):
    cache.put("s", b"bytes")
    cache.put(b"b", "text")
    cache.put(bytearray(b"ba"), bytearray(b"value"))
    cache.put(memoryview(b"mv"), memoryview(b"view"))
    assert cache.get("s") == b"bytes"
    assert cache.get(b"s") == b"bytes"  # str keys are UTF-8
    assert cache.get("b") == "text".encode()
    assert cache.get(b"ba") == b"value"
    assert cache.get("mv") == b"view"
    assert cache.get("missing") is None
    cache.put("é", "ü")
    assert cache.get("é".encode()) == "ü".encode()
    cache.put("empty", b"")
    assert cache.get("empty") == b""


@pytest.mark.parametrize("bad", [1, 1.5, None, ["k"], object(), {"k": 1}])
def test_wrong_key_types(cache, bad):
    with pytest.raises(TypeError) as e:
        cache.get(bad)
    assert type(bad).__name__ in str(e.value)
    with pytest.raises(TypeError):
        cache.put(bad, b"v")


@pytest.mark.parametrize("bad", [1, 2.5, None, ["v"], object()])
def test_wrong_value_types(cache, bad):
    with pytest.raises(TypeError) as e:
        cache.put("k", bad)
    assert type(bad).__name__ in str(e.value)
    assert cache.get("k") is None


def test_dict_access_and_context_manager(name):
    with memshelf.Cache(name, capacity=4 << 20) as c:
        c["k"] = b"v"
        assert c["k"] == b"v"
        assert "k" in c and "other" not in c
        del c["k"]
        with pytest.raises(KeyError):
            c["k"]
        with pytest.raises(KeyError):
            del c["k"]
    assert c.closed
    with pytest.raises(memshelf.ClosedError):
        c.get("k")
    with pytest.raises(memshelf.ClosedError):
        c.put("k", b"v")
    assert "closed" in repr(c)


def test_add_delete_incr(cache):
    assert cache.add("a", b"1") is True
    assert cache.add("a", b"2") is False
    assert cache.get("a") == b"1"
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    assert cache.incr("n") == 1
    assert cache.incr("n", 41) == 42
    assert cache.incr("n", -50) == -8
    assert cache.get("n") == b"-8"
    cache.put("text", b"hello")
    with pytest.raises(memshelf.NotAnInteger):
        cache.incr("text")
    with pytest.raises(ValueError):
        cache.incr("text")
    cache.put("big", str(2**63 - 1))
    with pytest.raises(memshelf.NotAnInteger):
        cache.incr("big")
    assert cache.get("text") == b"hello"


def test_ttl_touch_expiry(cache):
    cache.put("forever", b"v")
    assert cache.ttl("forever") == math.inf
    assert cache.ttl("absent") is None
    cache.put("short", b"v", ttl=0.5)
    left = cache.ttl("short")
    assert 0 < left <= 0.5
    time.sleep(0.6)
    assert cache.get("short") is None
    assert cache.ttl("short") is None
    assert cache.touch("forever", 100) is True
    assert 98 < cache.ttl("forever") <= 100
    assert cache.touch("absent", 1) is False


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), -0.5, 1e12])
def test_bad_ttls(cache, bad):
    with pytest.raises(memshelf.InvalidTTL):
        cache.put("k", b"v", ttl=bad)
    with pytest.raises(ValueError):
        cache.touch("k", bad)
    assert cache.get("k") is None


def test_ttl_type_errors(cache):
    with pytest.raises(TypeError):
        cache.put("k", b"v", ttl="10")
    with pytest.raises(TypeError):
        cache.put("k", b"v", ttl=True)


def test_tags_clear_keys_prefix(cache):
    cache.put("p:1", b"1", tags=["t1", b"t2"])
    cache.put("p:2", b"2", tags=("t2",))
    cache.put("q:1", b"3")
    assert sorted(cache.keys()) == [b"p:1", b"p:2", b"q:1"]
    assert sorted(cache.keys("p:")) == [b"p:1", b"p:2"]
    cache.invalidate_tag("t1")
    assert cache.get("p:1") is None and cache.get("p:2") == b"2"
    cache.invalidate_tag(b"t2")
    assert cache.get("p:2") is None
    for i in range(10):
        cache.put(f"user:{i}", b"u")
    assert cache.delete_prefix("user:") == 10
    assert cache.keys("user:") == []
    cache.clear()
    assert cache.get("q:1") is None and cache.keys() == []
    with pytest.raises(TypeError):
        cache.put("k", b"v", tags="not-a-list")
    with pytest.raises(memshelf.InvalidArgument):
        cache.put("k", b"v", tags=[str(i) for i in range(9)])


def test_limits(cache):
    with pytest.raises(memshelf.KeyTooLong) as e:
        cache.put("k" * 4097, b"v")
    assert "4096" in str(e.value)
    with pytest.raises(memshelf.KeyTooLong):
        cache.get("")
    too_big = b"x" * (cache.max_value_size + 1)
    with pytest.raises(memshelf.ValueTooLarge) as e:
        cache.put("big", too_big)
    assert str(cache.max_value_size) in str(e.value)
    assert isinstance(e.value, ValueError)
    assert cache.get("big") is None
    cache.put("big", b"x" * cache.max_value_size)
    assert len(cache.get("big")) == cache.max_value_size


def test_get_returns_exactly_the_value_at_every_length(cache):
    # get copies the value straight into the new bytes object: the tail of
    # the last word, lengths around word and page sizes, the largest value.
    lengths = [*range(0, 80), 255, 256, 257, 4095, 4096, 4097, cache.max_value_size]
    for n in lengths:
        v = bytes((i * 7 + n) % 251 + 1 for i in range(n))
        cache.put(f"len:{n}", v)
        got = cache.get(f"len:{n}")
        assert type(got) is bytes and got == v, n
        assert cache.get_many([f"len:{n}"]) == [v], n
    # one batch of every length, with misses between: each hit its own
    # bytes object, straight from the segment. An expired entry is copied
    # before it turns out a miss: the next value of its length (which may
    # reuse that unused object) is still whole.
    cache.put("expired:10", b"e" * 10, ttl=0.001)
    cache.put("expired:4096", b"e" * 4096, ttl=0.001)
    time.sleep(0.01)
    keys, want = [], []
    for n in lengths:
        keys += [f"len:{n}", "absent", f"expired:{10 if n % 2 else 4096}"]
        want += [bytes((i * 7 + n) % 251 + 1 for i in range(n)), None, None]
    keys += ["expired:10", "len:10", "expired:4096", "len:4096"]
    want += [None, want[3 * lengths.index(10)], None, want[3 * lengths.index(4096)]]
    got = cache.get_many(keys)
    assert [type(g) for g in got] == [type(w) for w in want]
    assert got == want
    # a value rewritten with another length reads as the new one
    cache.put("len:3", b"x" * 1000)
    assert cache.get("len:3") == b"x" * 1000


@pytest.mark.parametrize("bad", ["a/b", "..", ".hidden", "", "x" * 201, "sp ace"])
def test_bad_names(bad):
    with pytest.raises(memshelf.InvalidName):
        memshelf.Cache(bad, capacity="1MiB")


def test_expected_entry_size_sizes_the_index(name):
    default = memshelf.Cache(name, capacity="4MiB")
    small = memshelf.Cache(name + "-s", capacity="4MiB", expected_entry_size=24)
    try:
        # 4 slots (32 B) per expected entry: 24-byte entries (80-byte items)
        # get (184 + 32) / (80 + 32) = 1.9x the slots of the default 128
        # bytes (184-byte items).
        assert small.stats()["index_slots"] > 1.8 * default.stats()["index_slots"]
        for i in range(30_000):
            small.put(f"counter:{i:08}", i.to_bytes(8, "little"))
        assert small.stats()["entries"] == 30_000
        with pytest.raises(memshelf.InvalidArgument, match="expected_entry_size"):
            memshelf.Cache(name + "-z", capacity="4MiB", expected_entry_size=0)
        with pytest.raises(OverflowError):
            memshelf.Cache(name + "-n", capacity="4MiB", expected_entry_size=-1)
    finally:
        memshelf.unlink(name + "-s")


def test_open_options(name):
    with pytest.raises(memshelf.SegmentNotFound):
        memshelf.Cache(name, create=False)
    with pytest.raises(FileNotFoundError):
        memshelf.Cache(name, create=False)
    c = memshelf.Cache(name, capacity="2MiB", ttl=10, ttl_jitter=0.2, max_value_size=1000)
    assert c.capacity == 2 << 20 and c.max_value_size == 1000
    c.put("k", b"v")
    assert 7.9 <= c.ttl("k") <= 12
    other = memshelf.Cache(name, capacity="64MiB", create=False)  # attach: the creator's capacity wins
    assert other.capacity == 2 << 20 and other.get("k") == b"v"
    with pytest.raises(TypeError):
        memshelf.Cache(name, capacity=1.5)
    with pytest.raises(memshelf.InvalidArgument):
        memshelf.Cache(name + "x", capacity="lots")
    with pytest.raises(memshelf.InvalidArgument):
        memshelf.Cache(name + "y", capacity="1MiB", ttl_jitter=0.9)
    memshelf.unlink(name)
    with pytest.raises(memshelf.SegmentNotFound):
        memshelf.unlink(name)
    assert other.get("k") == b"v"  # still mapped after unlink


def test_incompatible_segment(name, tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"\x01" * 100_000)
    p.chmod(0o600)  # as memshelf creates segments (a wider mode is refused first)
    with pytest.raises(memshelf.IncompatibleSegment):
        memshelf.Cache(name, path=str(p))


def test_planted_segment_is_refused(name):
    # A file under the segment's name that grants more than the default mode
    # 0o600 (another user could have planted it): PermissionDenied, nothing
    # attached, nothing written.
    path = f"/dev/shm/memshelf.{name}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.fchmod(fd, 0o644)
    os.close(fd)
    try:
        with pytest.raises(memshelf.PermissionDenied) as e:
            memshelf.Cache(name, "1MiB")
        assert isinstance(e.value, PermissionError)
        assert "0644" in str(e.value)
        assert os.path.getsize(path) == 0
    finally:
        os.unlink(path)


def test_get_or_set(cache):
    calls = []

    def factory():
        calls.append(1)
        return b"computed"

    assert cache.get_or_set("g", factory) == b"computed"
    assert cache.get_or_set("g", factory) == b"computed"
    assert len(calls) == 1
    assert cache.get_or_set("s", lambda: "text") == b"text"

    class Boom(Exception):
        pass

    def failing():
        raise Boom("origin down")

    with pytest.raises(Boom):
        cache.get_or_set("f", failing)
    assert cache.get("f") is None
    assert cache.get_or_set("f", lambda: b"ok") == b"ok"  # the lease was handed on

    asked = []
    assert cache.get_or_set("none", lambda: asked.append(1), negative_ttl=60) is None
    assert cache.get_or_set("none", lambda: asked.append(1), negative_ttl=60) is None
    assert len(asked) == 1
    with pytest.raises(TypeError):
        cache.get_or_set("bad", lambda: 42)
    with pytest.raises(memshelf.InvalidTTL):
        cache.get_or_set("k", factory, lease=-1)


def test_stats_and_misc(cache):
    cache.put("k", b"v")
    cache.get("k")
    cache.get("nope")
    s = cache.stats()
    for k in ("capacity_bytes", "used_bytes", "entries", "hits", "misses", "inserts", "updates", "deletes",
              "evictions", "expirations", "get_or_set_waits", "layout_version"):
        assert k in s
    assert s["hits"] >= 1 and s["misses"] >= 1 and s["layout_version"] == memshelf.LAYOUT_VERSION
    assert memshelf.parse_size("1MiB") == 1 << 20
    assert memshelf.invalidation_message("tag", tag="product:7") == b'{"v":1,"op":"tag","tag":"product:7"}'
    assert memshelf.invalidation_message("clear", cache="c", origin="h1", seq=3) == \
        b'{"v":1,"op":"clear","cache":"c","origin":"h1","seq":3}'
    with pytest.raises(ValueError):
        memshelf.invalidation_message("nope")
    with pytest.raises(ValueError):
        memshelf.invalidation_message("del")


def test_more_key_and_value_types(cache):
    import array

    cache.put(memoryview(b"abcdef")[::2], memoryview(b"0123456789")[1::3])  # non-contiguous views
    assert cache.get(b"ace") == b"147"
    cache.put(array.array("B", b"arr"), array.array("B", b"val"))  # any byte buffer
    assert cache.get("arr") == b"val"
    assert cache.get(bytearray(b"arr")) == b"val"
    with pytest.raises(TypeError) as e:
        cache.put("k", array.array("i", [1, 2]))  # not a buffer of bytes
    assert "array" in str(e.value)
    with pytest.raises(TypeError):
        cache.get_or_set(42, lambda: b"v")
    with pytest.raises(TypeError) as e:
        cache.get_or_set("k", b"not callable")
    assert "callable" in str(e.value)
    for op in (cache.delete, cache.ttl, cache.touch, cache.incr, cache.__contains__, cache.__getitem__,
               cache.__delitem__, cache.invalidate_tag, cache.delete_prefix, cache.keys):
        with pytest.raises(TypeError):
            op(3.5)
    with pytest.raises(TypeError):
        cache.put("k", b"v", tags=[1])
    with pytest.raises(TypeError):
        cache.incr("k", "1")


def test_every_error_is_a_memshelf_error(cache, name, tmp_path):
    errors = [memshelf.InvalidName, memshelf.KeyTooLong, memshelf.ValueTooLarge, memshelf.InvalidTTL,
              memshelf.InvalidArgument, memshelf.IncompatibleSegment, memshelf.SegmentNotFound,
              memshelf.NotAnInteger, memshelf.NoSpace, memshelf.IOFailure, memshelf.Timeout,
              memshelf.ClosedError]
    assert all(issubclass(e, memshelf.Error) for e in errors)
    assert issubclass(memshelf.Timeout, TimeoutError)
    # a segment larger than /dev/shm can hold fails at open, not with SIGBUS later
    free = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize
    assert free < 1 << 40, "this test expects less than 1 TiB free in /dev/shm"
    with pytest.raises(memshelf.NoSpace) as e:
        memshelf.Cache(name + "-huge", capacity="1TiB")
    assert str(1 << 40) in str(e.value) and isinstance(e.value, OSError)
    with pytest.raises(memshelf.SegmentNotFound):
        memshelf.Cache(name + "-huge", create=False)  # nothing left behind
    with pytest.raises(memshelf.IOFailure) as e:
        memshelf.Cache(name, path=str(tmp_path / "no" / "such" / "dir"))
    assert isinstance(e.value, OSError)
    with pytest.raises(memshelf.InvalidArgument):
        memshelf.Cache(name + "-tiny", capacity=10)
    with pytest.raises((memshelf.InvalidArgument, OverflowError, ValueError)):
        memshelf.Cache(name + "-neg", capacity=-1)
    with pytest.raises(memshelf.KeyTooLong) as e:
        cache.incr(b"k" * 5000)
    assert "4096" in str(e.value)
    c = memshelf.Cache(name)
    c.close()
    c.close()  # idempotent
    for call in (lambda: c.get("k"), lambda: c.keys(), lambda: c.stats(), lambda: c.clear(),
                 lambda: c.get_or_set("k", lambda: b"v"), lambda: c.delete_prefix("p"),
                 lambda: c["k"], lambda: "k" in c, lambda: c.capacity):
        with pytest.raises(memshelf.ClosedError):
            call()
    assert cache.get("k") is None  # another handle on the same segment is unaffected


def test_grace_serves_stale_while_one_refreshes(cache):
    import threading

    assert cache.get_or_set("g", lambda: b"old", ttl=0.05, grace=30) == b"old"
    time.sleep(0.1)
    assert cache.get("g") is None  # expired: a plain get never returns it
    refreshing, release = threading.Event(), threading.Event()
    got = []

    def refresh():
        refreshing.set()
        release.wait(10)
        return b"new"

    t = threading.Thread(target=lambda: got.append(cache.get_or_set("g", refresh, ttl=60, grace=30)))
    t.start()
    assert refreshing.wait(10)
    # while the refresh runs, everyone else gets the stale value at once
    assert cache.get_or_set("g", lambda: b"never called", ttl=60, grace=30) == b"old"
    release.set()
    t.join(10)
    assert got == [b"new"]
    assert cache.get("g") == b"new"


def test_get_or_set_voided_by_delete_and_tags(cache):
    def factory_that_races_a_delete():
        cache.delete("v")  # an invalidation lands while the factory runs
        return b"maybe stale"

    assert cache.get_or_set("v", factory_that_races_a_delete) == b"maybe stale"
    assert cache.get("v") is None  # returned to the caller, not stored
    assert cache.get_or_set("t", lambda: b"tagged", tags=["grp"]) == b"tagged"
    cache.invalidate_tag("grp")
    assert cache.get("t") is None
    with pytest.raises(memshelf.ValueTooLarge):
        cache.get_or_set("big", lambda: b"x" * (cache.max_value_size + 1))
    assert cache.get_or_set("big", lambda: b"small") == b"small"  # the lease was released


def test_invalidation_messages():
    import base64
    import json

    m = json.loads(memshelf.invalidation_message("del", keys=["user:42", b"user:43"]))
    assert m == {"v": 1, "op": "del", "keys": ["user:42", "user:43"]}
    m = json.loads(memshelf.invalidation_message("del", keys=[b"\xff\x00"]))
    assert [base64.b64decode(k) for k in m["keys_b64"]] == [b"\xff\x00"]
    m = json.loads(memshelf.invalidation_message("del_prefix", prefix="user:", ts=1700000000000))
    assert m == {"v": 1, "op": "del_prefix", "prefix": "user:", "ts": 1700000000000}
    assert json.loads(memshelf.invalidation_message("hb")) == {"v": 1, "op": "hb"}
    assert isinstance(memshelf.invalidation_message("clear"), bytes)
    with pytest.raises(ValueError):
        memshelf.invalidation_message("tag")  # needs tag=
    with pytest.raises(ValueError):
        memshelf.invalidation_message("clear", seq=3)  # seq needs an origin
    # One rule set in every language (core::message): no empty del or
    # prefix, no field the op does not take, an origin alone is fine.
    for bad in (dict(keys=[]), dict(keys=[b""])):
        with pytest.raises(ValueError):
            memshelf.invalidation_message("del", **bad)
    with pytest.raises(ValueError):
        memshelf.invalidation_message("del_prefix", prefix="")
    with pytest.raises(ValueError):
        memshelf.invalidation_message("tag", tag="t", keys=["k"])
    assert json.loads(memshelf.invalidation_message("hb", origin="w:1")) == {"v": 1, "op": "hb", "origin": "w:1"}
    with pytest.raises(TypeError):
        memshelf.invalidation_message("del", keys=[1])


def test_keys_types_and_prefix(cache):
    cache.put(b"\xffbin", b"1")
    cache.put("txt", b"2")
    assert set(cache.keys()) == {b"\xffbin", b"txt"}
    assert cache.keys(b"\xff") == [b"\xffbin"]
    assert cache.keys(memoryview(b"tx")) == [b"txt"]
    assert cache.keys(None) == cache.keys()
    assert cache.delete_prefix(bytearray(b"\xff")) == 1
    assert cache.name and cache.name in repr(cache)


def test_duration_options_follow_the_engine_rules(cache):
    # One conversion (memshelf::duration_from_secs) and the engine's rules,
    # as in Node and C: grace may be 0, lease and negative_ttl may not; a
    # negative, NaN or too long duration is InvalidTtl.
    assert cache.get_or_set("g0", lambda: b"v", grace=0) == b"v"
    for bad in (dict(lease=0), dict(negative_ttl=0), dict(lease=-1), dict(grace=float("nan")),
                dict(lease=1e12)):
        with pytest.raises(memshelf.InvalidTtl):
            cache.get_or_set("bad", lambda: b"v", **bad)
    assert "bad" not in cache


def test_odd_buffers_and_huge_numbers_get_errors_that_say_what_is_wrong(name):
    # An audit found each of these reported as something else: a released
    # memoryview or a buffer of ints as "must be ... memoryview, not
    # memoryview", ttl=10**400 as "not int", capacity=2**70 as a plain
    # ValueError.
    import array

    c = memshelf.Cache(name, capacity="4MiB")
    m = memoryview(b"key")
    m.release()
    with pytest.raises(ValueError, match="released"):
        c.put(m, b"v")
    for buf in (array.array("i", [1, 2]), memoryview(b"abcd").cast("I")):
        with pytest.raises(TypeError, match="buffer of unsigned bytes"):
            c.put("k", buf)
    for what in ("ttl", "lease", "grace"):
        with pytest.raises(memshelf.InvalidTtl, match=f"{what} is out of range"):
            if what == "ttl":
                c.put("k", b"v", ttl=10**400)
            else:
                c.get_or_set("k2", lambda: b"v", **{what: 10**400})
    with pytest.raises(memshelf.InvalidArgument, match="capacity"):
        memshelf.Cache(name + "-big", capacity=2**70)
    assert c.get("k") is None
