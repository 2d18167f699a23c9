/* Every function of the C ABI, with its error paths, against the real
 * library (linked shared or static by scripts/test-c.sh). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <time.h>

#include "check.h"

/* Stops the test when a precondition (not a check of the library) fails. */
#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);   \
            exit(2);                                                                     \
        }                                                                                \
    } while (0)

static memshelf_cache *open_new(const char *what, char *name, size_t name_len) {
    memshelf_options o;
    memshelf_cache *c = NULL;
    test_name(name, name_len, what);
    REQUIRE_OK(memshelf_options_init(&o));
    o.capacity = 8u << 20;
    REQUIRE_OK(memshelf_open(name, &o, &c));
    return c;
}

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static void test_versions(void) {
    int code;
    CHECK(memshelf_abi_version() == MEMSHELF_ABI_VERSION);
    CHECK(strlen(memshelf_version()) > 0);
    CHECK(memshelf_layout_version() > 0);
    for (code = 0; code < 100; code++) {
        CHECK(memshelf_strerror(code) != NULL && strlen(memshelf_strerror(code)) > 0);
    }
    CHECK(strcmp(memshelf_strerror(MEMSHELF_OK), "success") == 0);
    CHECK(strcmp(memshelf_strerror(MEMSHELF_ERR_NOT_AN_INTEGER), "not an integer") == 0);
    CHECK(strcmp(memshelf_strerror(12345), "unknown status code") == 0);
    CHECK(strcmp(memshelf_strerror(-1), "unknown status code") == 0);
}

static void test_open_errors(void) {
    char name[64];
    memshelf_options o;
    memshelf_cache *c = (memshelf_cache *)&o; /* not NULL: open must reset it */

    test_name(name, sizeof name, "missing");
    CHECK_STATUS(memshelf_options_init(NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    REQUIRE_OK(memshelf_options_init(&o));
    CHECK(o.struct_size == sizeof o && o.create != 0 && o.mode == 0600 && o.path == NULL);

    CHECK_STATUS(memshelf_open(NULL, &o, &c), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK(c == NULL);
    CHECK_STATUS(memshelf_open(name, &o, NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_open("a/b", &o, &c), MEMSHELF_ERR_INVALID_NAME);
    CHECK(strstr(memshelf_last_error(), "a/b") != NULL);
    CHECK_STATUS(memshelf_open("", &o, &c), MEMSHELF_ERR_INVALID_NAME);
    CHECK_STATUS(memshelf_open(".hidden", &o, &c), MEMSHELF_ERR_INVALID_NAME);
    CHECK_STATUS(memshelf_open("..", &o, &c), MEMSHELF_ERR_INVALID_NAME);
    CHECK_STATUS(memshelf_open("bad\xff", &o, &c), MEMSHELF_ERR_INVALID_NAME);

    o.create = 0; /* attach only, and the segment does not exist */
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_NOT_FOUND);
    CHECK(c == NULL);
    CHECK(strstr(memshelf_last_error(), name) != NULL);

    REQUIRE_OK(memshelf_options_init(&o));
    o.capacity = 100; /* below the minimum */
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_options_init(&o));
    o.ttl_jitter = 0.9;
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_options_init(&o));
    o.mode = 01777;
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_options_init(&o));
    o.default_ttl_ms = UINT64_MAX - 1; /* longer than the 100-year limit */
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_TTL);
    REQUIRE_OK(memshelf_options_init(&o));
    o.struct_size = 8; /* an options struct from nowhere */
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK(strstr(memshelf_last_error(), "struct_size") != NULL);
    {
        /* A newer caller's bigger struct: accepted when the unknown tail is 0. */
        struct {
            memshelf_options o;
            uint64_t newer_field;
        } big;
        memset(&big, 0, sizeof big);
        REQUIRE_OK(memshelf_options_init(&big.o));
        big.o.struct_size = sizeof big;
        big.o.capacity = 1u << 20;
        big.newer_field = 7;
        CHECK_STATUS(memshelf_open(name, &big.o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
        big.newer_field = 0;
        CHECK_OK(memshelf_open(name, &big.o, &c));
        CHECK(c != NULL);
        memshelf_close(c);
        CHECK_OK(memshelf_unlink(name));
    }
    {
        /* A caller built against the previous header (no
         * expected_entry_size): its shorter struct is accepted and the
         * field it does not know takes the default. */
        REQUIRE_OK(memshelf_options_init(&o));
        o.struct_size = offsetof(memshelf_options, expected_entry_size);
        o.capacity = 1u << 20;
        CHECK_OK(memshelf_open(name, &o, &c));
        CHECK(c != NULL);
        memshelf_close(c);
        CHECK_OK(memshelf_unlink(name));
        /* expected_entry_size sizes the index: 24-byte entries (16-byte
         * keys, 8-byte values) in 4 MiB, every one kept. */
        REQUIRE_OK(memshelf_options_init(&o));
        CHECK(o.expected_entry_size == 0);
        o.capacity = 4u << 20;
        o.expected_entry_size = 24;
        REQUIRE_OK(memshelf_open(name, &o, &c));
        for (uint64_t i = 0; i < 30000; i++) {
            char key[32];
            int n = snprintf(key, sizeof key, "counter:%08llu", (unsigned long long)i);
            REQUIRE_OK(memshelf_put(c, (const uint8_t *)key, (size_t)n, (const uint8_t *)&i, sizeof i,
                                    0, NULL, 0));
        }
        memshelf_stats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        REQUIRE_OK(memshelf_get_stats(c, &st));
        CHECK(st.entries == 30000);
        memshelf_close(c);
        CHECK_OK(memshelf_unlink(name));
        REQUIRE_OK(memshelf_options_init(&o));
        o.expected_entry_size = (uint64_t)1 << 40;
        CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
    }
    /* NULL options: the defaults. */
    c = NULL;
    CHECK_OK(memshelf_open(name, NULL, &c));
    CHECK(c != NULL);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
    memshelf_close(NULL); /* a no-op */
}

static void test_get_put(void) {
    char name[64];
    memshelf_cache *c = open_new("getput", name, sizeof name);
    uint8_t buf[256];
    size_t len = 99;
    static uint8_t big_key[MEMSHELF_MAX_KEY_LEN + 1];

    CHECK_STATUS(memshelf_get(c, K("absent"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK(len == 0);
    CHECK_OK(memshelf_put(c, K("greeting"), K("hello, world"), 0, NULL, 0));
    CHECK_OK(memshelf_get(c, K("greeting"), buf, sizeof buf, &len));
    CHECK(len == 12 && memcmp(buf, "hello, world", 12) == 0);
    CHECK_OK(memshelf_put(c, K("greeting"), K("hi"), 0, NULL, 0));
    CHECK_OK(memshelf_get(c, K("greeting"), buf, sizeof buf, &len));
    CHECK(len == 2 && memcmp(buf, "hi", 2) == 0);

    /* The key built in the buffer the value is read into (it is copied
       before the value lands there), at its start and inside it. */
    CHECK_OK(memshelf_put(c, K("greeting"), K("hello again, world"), 0, NULL, 0));
    memcpy(buf, "greeting", 8);
    CHECK_OK(memshelf_get(c, buf, 8, buf, sizeof buf, &len));
    CHECK(len == 18 && memcmp(buf, "hello again, world", 18) == 0);
    memcpy(buf + 5, "greeting", 8);
    CHECK_OK(memshelf_get(c, buf + 5, 8, buf, sizeof buf, &len));
    CHECK(len == 18 && memcmp(buf, "hello again, world", 18) == 0);

    /* Buffer too small: the needed length, nothing copied. */
    CHECK_OK(memshelf_put(c, K("long"), K("0123456789"), 0, NULL, 0));
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(memshelf_get(c, K("long"), buf, 4, &len), MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 10 && buf[0] == 'x');
    CHECK(strstr(memshelf_last_error(), "10 bytes") != NULL);
    CHECK_STATUS(memshelf_get(c, K("long"), NULL, 0, &len), MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 10);
    CHECK_OK(memshelf_get(c, K("long"), buf, 10, &len)); /* exactly enough */
    CHECK(len == 10 && memcmp(buf, "0123456789", 10) == 0);

    /* Empty value, NULL data with length 0. */
    CHECK_OK(memshelf_put(c, K("empty"), NULL, 0, 0, NULL, 0));
    len = 5;
    CHECK_OK(memshelf_get(c, K("empty"), NULL, 0, &len));
    CHECK(len == 0);

    /* Binary keys and values (embedded NULs). */
    {
        const uint8_t bk[3] = {0, 1, 0};
        const uint8_t bv[4] = {0, 255, 0, 7};
        CHECK_OK(memshelf_put(c, bk, 3, bv, 4, 0, NULL, 0));
        CHECK_OK(memshelf_get(c, bk, 3, buf, sizeof buf, &len));
        CHECK(len == 4 && memcmp(buf, bv, 4) == 0);
    }

    /* NULL arguments. */
    CHECK_STATUS(memshelf_get(NULL, K("greeting"), buf, sizeof buf, &len),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get(c, NULL, 3, buf, sizeof buf, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get(c, K("greeting"), NULL, 10, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get(c, K("greeting"), buf, sizeof buf, NULL),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_put(NULL, K("k"), K("v"), 0, NULL, 0), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_put(c, NULL, 1, K("v"), 0, NULL, 0), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_put(c, K("k"), NULL, 5, 0, NULL, 0), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK(strstr(memshelf_last_error(), "value") != NULL);
    CHECK_STATUS(memshelf_get(c, K("k"), buf, sizeof buf, &len), MEMSHELF_MISS);

    /* Key limits: empty, MEMSHELF_MAX_KEY_LEN, one more. */
    memset(big_key, 'k', sizeof big_key);
    CHECK_STATUS(memshelf_put(c, NULL, 0, K("v"), 0, NULL, 0), MEMSHELF_ERR_KEY_TOO_LONG);
    CHECK_STATUS(memshelf_get(c, NULL, 0, buf, sizeof buf, &len), MEMSHELF_ERR_KEY_TOO_LONG);
    CHECK_OK(memshelf_put(c, big_key, MEMSHELF_MAX_KEY_LEN, K("v"), 0, NULL, 0));
    CHECK_OK(memshelf_get(c, big_key, MEMSHELF_MAX_KEY_LEN, buf, sizeof buf, &len));
    CHECK_STATUS(memshelf_put(c, big_key, MEMSHELF_MAX_KEY_LEN + 1, K("v"), 0, NULL, 0),
                 MEMSHELF_ERR_KEY_TOO_LONG);
    CHECK(strstr(memshelf_last_error(), "4096") != NULL);
    CHECK_STATUS(memshelf_get(c, big_key, MEMSHELF_MAX_KEY_LEN + 1, buf, sizeof buf, &len),
                 MEMSHELF_ERR_KEY_TOO_LONG);
    /* An absurd length is refused before anything is read. */
    CHECK_STATUS(memshelf_get(c, big_key, SIZE_MAX, buf, sizeof buf, &len),
                 MEMSHELF_ERR_INVALID_ARGUMENT);

    /* last_error stays after a success. */
    CHECK_OK(memshelf_put(c, K("k2"), K("v"), 0, NULL, 0));
    CHECK(strstr(memshelf_last_error(), "absurd") != NULL);

    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void test_get_many(void) {
    char name[64];
    memshelf_cache *c = open_new("getmany", name, sizeof name);
    CHECK_OK(memshelf_put(c, K("a"), K("alpha"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("c"), K("gamma!"), 0, NULL, 0));
    memshelf_bytes keys[3] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"b", 1},
                              {(const uint8_t *)"c", 1}};
    uint8_t buf[64];
    size_t offs[3], lens[3], needed = 0;
    CHECK_OK(memshelf_get_many(c, keys, 3, buf, sizeof buf, offs, lens, &needed));
    CHECK(needed == 11);
    CHECK(lens[0] == 5 && memcmp(buf + offs[0], "alpha", 5) == 0);
    CHECK(lens[1] == MEMSHELF_ABSENT);
    CHECK(lens[2] == 6 && memcmp(buf + offs[2], "gamma!", 6) == 0);
    /* Too small: the size needed, retry works. */
    CHECK_STATUS(memshelf_get_many(c, keys, 3, buf, 4, offs, lens, &needed),
                 MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == 11);
    CHECK(strstr(memshelf_last_error(), "11 bytes") != NULL);
    /* Exactly the room: packed back to back, nothing written past it. */
    memset(buf, 0xa5, sizeof buf);
    CHECK_OK(memshelf_get_many(c, keys, 3, buf, 11, offs, lens, &needed));
    CHECK(needed == 11 && offs[0] == 0 && offs[2] == 5);
    CHECK(memcmp(buf, "alphagamma!", 11) == 0 && buf[11] == 0xa5);
    /* The first value fits, the second does not: nothing past the buffer. */
    memset(buf, 0xa5, sizeof buf);
    CHECK_STATUS(memshelf_get_many(c, keys, 3, buf, 5, offs, lens, &needed),
                 MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == 11 && buf[5] == 0xa5);
    /* A bad key fails the whole call. */
    memshelf_bytes bad[2] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"", 0}};
    CHECK_STATUS(memshelf_get_many(c, bad, 2, buf, sizeof buf, offs, lens, &needed),
                 MEMSHELF_ERR_KEY_TOO_LONG);
    CHECK_STATUS(memshelf_get_many(c, keys, 3, buf, sizeof buf, NULL, lens, &needed),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_OK(memshelf_get_many(c, NULL, 0, NULL, 0, NULL, NULL, NULL));
    memshelf_close(c);
    memshelf_unlink(name);
}

static void test_value_limit(void) {
    char name[64];
    memshelf_options o;
    memshelf_cache *c = NULL;
    static uint8_t value[2048];
    uint8_t buf[16];
    size_t len;
    memshelf_stats s;

    test_name(name, sizeof name, "limit");
    REQUIRE_OK(memshelf_options_init(&o));
    o.capacity = 4u << 20;
    o.max_value_size = 1024;
    REQUIRE_OK(memshelf_open(name, &o, &c));
    CHECK_OK(memshelf_put(c, K("v"), K("old"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("ok"), value, 1024, 0, NULL, 0));
    CHECK_STATUS(memshelf_put(c, K("v"), value, 1025, 0, NULL, 0), MEMSHELF_ERR_VALUE_TOO_LARGE);
    CHECK(strstr(memshelf_last_error(), "1024") != NULL);
    CHECK_STATUS(memshelf_add(c, K("new"), value, 2048, 0, NULL, 0, NULL),
                 MEMSHELF_ERR_VALUE_TOO_LARGE);
    CHECK_OK(memshelf_get(c, K("v"), buf, sizeof buf, &len)); /* unchanged */
    CHECK(len == 3 && memcmp(buf, "old", 3) == 0);
    CHECK_STATUS(memshelf_get(c, K("new"), buf, sizeof buf, &len), MEMSHELF_MISS);
    s.struct_size = sizeof s;
    CHECK_OK(memshelf_get_stats(c, &s));
    CHECK(s.max_value_size == 1024);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void test_ttl_touch(void) {
    char name[64];
    memshelf_cache *c = open_new("ttl", name, sizeof name);
    uint64_t ms = 0;
    bool found = false;
    uint8_t buf[16];
    size_t len;

    CHECK_OK(memshelf_put(c, K("t"), K("v"), 60000, NULL, 0));
    CHECK_OK(memshelf_ttl(c, K("t"), &ms));
    CHECK(ms > 0 && ms <= 60000);
    CHECK_OK(memshelf_put(c, K("forever"), K("v"), MEMSHELF_TTL_NEVER, NULL, 0));
    CHECK_OK(memshelf_ttl(c, K("forever"), &ms));
    CHECK(ms == MEMSHELF_TTL_NEVER);
    CHECK_OK(memshelf_put(c, K("plain"), K("v"), 0, NULL, 0)); /* no default TTL */
    CHECK_OK(memshelf_ttl(c, K("plain"), &ms));
    CHECK(ms == MEMSHELF_TTL_NEVER);
    ms = 5;
    CHECK_STATUS(memshelf_ttl(c, K("absent"), &ms), MEMSHELF_MISS);
    CHECK(ms == 0);
    CHECK_STATUS(memshelf_ttl(c, K("t"), NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_ttl(NULL, K("t"), &ms), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_ttl(c, NULL, 0, &ms), MEMSHELF_ERR_KEY_TOO_LONG);

    /* Over the 100-year limit. */
    CHECK_STATUS(memshelf_put(c, K("t"), K("v"), UINT64_MAX - 1, NULL, 0),
                 MEMSHELF_ERR_INVALID_TTL);
    CHECK_STATUS(memshelf_touch(c, K("t"), UINT64_MAX - 1, &found), MEMSHELF_ERR_INVALID_TTL);

    /* touch: a new TTL on a present key. */
    CHECK_OK(memshelf_touch(c, K("forever"), 30000, &found));
    CHECK(found);
    CHECK_OK(memshelf_ttl(c, K("forever"), &ms));
    CHECK(ms > 0 && ms <= 30000);
    CHECK_OK(memshelf_touch(c, K("forever"), MEMSHELF_TTL_NEVER, NULL));
    CHECK_OK(memshelf_ttl(c, K("forever"), &ms));
    CHECK(ms == MEMSHELF_TTL_NEVER);
    found = true;
    CHECK_OK(memshelf_touch(c, K("absent"), 1000, &found));
    CHECK(!found);
    CHECK_STATUS(memshelf_touch(NULL, K("t"), 1000, &found), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_touch(c, NULL, 2, 1000, &found), MEMSHELF_ERR_NULL_ARGUMENT);

    /* An expired entry is never returned. */
    CHECK_OK(memshelf_put(c, K("short"), K("v"), 1, NULL, 0));
    CHECK_OK(memshelf_touch(c, K("t"), 1, NULL));
    sleep_ms(30);
    CHECK_STATUS(memshelf_get(c, K("short"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_get(c, K("t"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_ttl(c, K("t"), &ms), MEMSHELF_MISS);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));

    /* A segment default TTL applies to puts with ttl_ms 0. */
    {
        memshelf_options o;
        REQUIRE_OK(memshelf_options_init(&o));
        o.capacity = 4u << 20;
        o.default_ttl_ms = 60000;
        o.ttl_jitter = 0.1;
        test_name(name, sizeof name, "defttl");
        REQUIRE_OK(memshelf_open(name, &o, &c));
        CHECK_OK(memshelf_put(c, K("d"), K("v"), 0, NULL, 0));
        CHECK_OK(memshelf_ttl(c, K("d"), &ms));
        CHECK(ms > 0 && ms <= 66000);
        CHECK_OK(memshelf_put(c, K("n"), K("v"), MEMSHELF_TTL_NEVER, NULL, 0));
        CHECK_OK(memshelf_ttl(c, K("n"), &ms));
        CHECK(ms == MEMSHELF_TTL_NEVER);
        memshelf_close(c);
        CHECK_OK(memshelf_unlink(name));
    }
}

static void test_add_delete(void) {
    char name[64];
    memshelf_cache *c = open_new("adddel", name, sizeof name);
    bool flag = false;
    uint8_t buf[16];
    size_t len;

    CHECK_OK(memshelf_add(c, K("a"), K("first"), 0, NULL, 0, &flag));
    CHECK(flag);
    CHECK_OK(memshelf_add(c, K("a"), K("second"), 0, NULL, 0, &flag));
    CHECK(!flag);
    CHECK_OK(memshelf_get(c, K("a"), buf, sizeof buf, &len));
    CHECK(len == 5 && memcmp(buf, "first", 5) == 0);
    CHECK_OK(memshelf_add(c, K("b"), K("x"), 60000, NULL, 0, NULL)); /* inserted optional */
    CHECK_STATUS(memshelf_add(NULL, K("a"), K("v"), 0, NULL, 0, &flag),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_add(c, NULL, 0, K("v"), 0, NULL, 0, &flag), MEMSHELF_ERR_KEY_TOO_LONG);
    CHECK_STATUS(memshelf_add(c, K("a"), K("v"), UINT64_MAX - 1, NULL, 0, &flag),
                 MEMSHELF_ERR_INVALID_TTL);

    CHECK_OK(memshelf_delete(c, K("a"), &flag));
    CHECK(flag);
    CHECK_OK(memshelf_delete(c, K("a"), &flag));
    CHECK(!flag);
    CHECK_OK(memshelf_delete(c, K("b"), NULL));
    CHECK_STATUS(memshelf_get(c, K("b"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_delete(NULL, K("a"), &flag), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_delete(c, NULL, 1, &flag), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_delete(c, NULL, 0, &flag), MEMSHELF_ERR_KEY_TOO_LONG);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void test_incr(void) {
    char name[64];
    memshelf_cache *c = open_new("incr", name, sizeof name);
    int64_t n = 0;
    uint8_t buf[32];
    size_t len;
    uint64_t ms;

    CHECK_OK(memshelf_incr(c, K("n"), 5, 0, &n));
    CHECK(n == 5);
    CHECK_OK(memshelf_incr(c, K("n"), -7, 0, &n));
    CHECK(n == -2);
    CHECK_OK(memshelf_get(c, K("n"), buf, sizeof buf, &len));
    CHECK(len == 2 && memcmp(buf, "-2", 2) == 0);
    CHECK_OK(memshelf_incr(c, K("n"), 1, 0, NULL)); /* new_value optional */
    CHECK_OK(memshelf_incr(c, K("n"), 0, 0, &n));
    CHECK(n == -1);
    CHECK_OK(memshelf_incr(c, K("n"), 1, 60000, &n)); /* a TTL resets the expiry */
    CHECK_OK(memshelf_ttl(c, K("n"), &ms));
    CHECK(ms > 0 && ms <= 60000);

    CHECK_OK(memshelf_put(c, K("text"), K("forty-two"), 0, NULL, 0));
    CHECK_STATUS(memshelf_incr(c, K("text"), 1, 0, &n), MEMSHELF_ERR_NOT_AN_INTEGER);
    CHECK(strstr(memshelf_last_error(), "forty-two") != NULL);
    CHECK_OK(memshelf_get(c, K("text"), buf, sizeof buf, &len)); /* unchanged */
    CHECK(len == 9 && memcmp(buf, "forty-two", 9) == 0);
    CHECK_OK(memshelf_put(c, K("max"), K("9223372036854775807"), 0, NULL, 0));
    CHECK_STATUS(memshelf_incr(c, K("max"), 1, 0, &n), MEMSHELF_ERR_NOT_AN_INTEGER);
    CHECK_OK(memshelf_incr(c, K("max"), -1, 0, &n));
    CHECK(n == INT64_MAX - 1);
    CHECK_STATUS(memshelf_incr(NULL, K("n"), 1, 0, &n), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_incr(c, NULL, 4, 1, 0, &n), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_incr(c, K("n"), 1, UINT64_MAX - 1, &n), MEMSHELF_ERR_INVALID_TTL);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void test_tags_prefix_clear(void) {
    char name[64];
    memshelf_cache *c = open_new("tags", name, sizeof name);
    memshelf_bytes tags[MEMSHELF_MAX_TAGS + 1];
    uint8_t buf[16];
    size_t len, i;
    uint64_t count = 0;
    bool flag;

    tags[0].data = (const uint8_t *)"product:7";
    tags[0].len = 9;
    tags[1].data = (const uint8_t *)"shop:1";
    tags[1].len = 6;
    CHECK_OK(memshelf_put(c, K("p7"), K("v"), 0, tags, 2));
    CHECK_OK(memshelf_put(c, K("s1"), K("v"), 60000, tags + 1, 1));
    CHECK_OK(memshelf_add(c, K("p7b"), K("v"), 0, tags, 1, &flag));
    CHECK(flag);
    CHECK_OK(memshelf_put(c, K("untagged"), K("v"), 0, NULL, 0));
    CHECK_OK(memshelf_invalidate_tag(c, K("product:7")));
    CHECK_STATUS(memshelf_get(c, K("p7"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_get(c, K("p7b"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_OK(memshelf_get(c, K("s1"), buf, sizeof buf, &len));
    CHECK_OK(memshelf_get(c, K("untagged"), buf, sizeof buf, &len));
    CHECK_OK(memshelf_invalidate_tag(c, K("shop:1")));
    CHECK_STATUS(memshelf_get(c, K("s1"), buf, sizeof buf, &len), MEMSHELF_MISS);

    for (i = 0; i <= MEMSHELF_MAX_TAGS; i++) {
        tags[i].data = (const uint8_t *)"t";
        tags[i].len = 1;
    }
    CHECK_OK(memshelf_put(c, K("eight"), K("v"), 0, tags, MEMSHELF_MAX_TAGS));
    CHECK_STATUS(memshelf_put(c, K("nine"), K("v"), 0, tags, MEMSHELF_MAX_TAGS + 1),
                 MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(memshelf_put(c, K("huge"), K("v"), 0, tags, SIZE_MAX),
                 MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(memshelf_put(c, K("nul"), K("v"), 0, NULL, 2), MEMSHELF_ERR_NULL_ARGUMENT);
    tags[0].len = 0; /* an empty tag */
    CHECK_STATUS(memshelf_put(c, K("e"), K("v"), 0, tags, 1), MEMSHELF_ERR_INVALID_ARGUMENT);
    tags[0].data = NULL;
    tags[0].len = 3;
    CHECK_STATUS(memshelf_put(c, K("e"), K("v"), 0, tags, 1), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get(c, K("nine"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_get(c, K("e"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_invalidate_tag(c, NULL, 0), MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(memshelf_invalidate_tag(c, NULL, 1), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_invalidate_tag(NULL, K("t")), MEMSHELF_ERR_NULL_ARGUMENT);

    /* delete_prefix */
    CHECK_OK(memshelf_put(c, K("user:1"), K("a"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("user:2"), K("b"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("user:3"), K("c"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("users"), K("d"), 0, NULL, 0));
    CHECK_OK(memshelf_delete_prefix(c, K("user:"), &count));
    CHECK(count == 3);
    CHECK_STATUS(memshelf_get(c, K("user:2"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_OK(memshelf_get(c, K("users"), buf, sizeof buf, &len));
    CHECK_OK(memshelf_delete_prefix(c, K("user:"), NULL));
    CHECK_STATUS(memshelf_delete_prefix(NULL, K("u"), &count), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_delete_prefix(c, NULL, 1, &count), MEMSHELF_ERR_NULL_ARGUMENT);

    /* clear */
    CHECK_OK(memshelf_clear(c));
    CHECK_STATUS(memshelf_get(c, K("users"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_STATUS(memshelf_get(c, K("untagged"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_OK(memshelf_put(c, K("after"), K("v"), 0, NULL, 0));
    CHECK_OK(memshelf_get(c, K("after"), buf, sizeof buf, &len));
    CHECK_STATUS(memshelf_clear(NULL), MEMSHELF_ERR_NULL_ARGUMENT);

    /* an empty prefix removes every key */
    CHECK_OK(memshelf_delete_prefix(c, NULL, 0, &count));
    CHECK(count == 1);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void test_keys(void) {
    char name[64];
    memshelf_cache *c = open_new("keys", name, sizeof name);
    memshelf_cache *c2 = NULL;
    memshelf_keys *it = (memshelf_keys *)&name; /* not NULL: open must reset it */
    uint8_t buf[MEMSHELF_MAX_KEY_LEN];
    size_t len;
    int i, seen = 0, mask = 0;
    memshelf_status st;
    char key[16];

    for (i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k:%d", i);
        CHECK_OK(memshelf_put(c, K(key), K("v"), 0, NULL, 0));
    }
    CHECK_OK(memshelf_put(c, K("other"), K("v"), 0, NULL, 0));
    CHECK_OK(memshelf_keys_open(c, K("k:"), &it));
    while ((st = memshelf_keys_next(it, buf, sizeof buf, &len)) == MEMSHELF_OK) {
        seen++;
        if (len == 3 && memcmp(buf, "k:", 2) == 0) {
            mask |= 1 << (buf[2] - '0');
        }
    }
    CHECK(st == MEMSHELF_MISS);
    CHECK(seen == 10 && mask == 0x3ff);
    CHECK_STATUS(memshelf_keys_next(it, buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK(len == 0);
    memshelf_keys_free(it);

    /* Every key; a too-small buffer keeps the key for the next call. */
    CHECK_OK(memshelf_keys_open(c, NULL, 0, &it));
    CHECK_STATUS(memshelf_keys_next(it, buf, 1, &len), MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(len >= 3);
    CHECK_STATUS(memshelf_keys_next(it, NULL, 0, &len), MEMSHELF_ERR_BUFFER_TOO_SMALL);
    seen = 0;
    while (memshelf_keys_next(it, buf, sizeof buf, &len) == MEMSHELF_OK) {
        seen++;
    }
    CHECK(seen == 11);
    memshelf_keys_free(it);

    /* Errors. */
    CHECK_STATUS(memshelf_keys_open(NULL, NULL, 0, &it), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK(it == NULL);
    CHECK_STATUS(memshelf_keys_open(c, NULL, 0, NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_keys_open(c, NULL, 2, &it), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_keys_next(NULL, buf, sizeof buf, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    memshelf_keys_free(NULL);

    /* An iterator outlives the handle it came from. */
    REQUIRE_OK(memshelf_open(name, NULL, &c2));
    CHECK_OK(memshelf_keys_open(c2, K("other"), &it));
    CHECK_STATUS(memshelf_keys_next(it, buf, sizeof buf, NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_keys_next(it, NULL, 4, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    memshelf_close(c2);
    CHECK_OK(memshelf_keys_next(it, buf, sizeof buf, &len));
    CHECK(len == 5 && memcmp(buf, "other", 5) == 0);
    memshelf_keys_free(it);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void test_stats(void) {
    char name[64];
    memshelf_cache *c = open_new("stats", name, sizeof name);
    memshelf_stats s;
    uint8_t buf[16];
    size_t len;
    struct {
        memshelf_stats s;
        uint64_t newer[2];
    } big;

    CHECK_OK(memshelf_put(c, K("a"), K("1"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("a"), K("2"), 0, NULL, 0));
    CHECK_OK(memshelf_get(c, K("a"), buf, sizeof buf, &len));
    CHECK_STATUS(memshelf_get(c, K("b"), buf, sizeof buf, &len), MEMSHELF_MISS);
    CHECK_OK(memshelf_delete(c, K("a"), NULL));
    memset(&s, 0xff, sizeof s);
    s.struct_size = sizeof s;
    CHECK_OK(memshelf_get_stats(c, &s));
    CHECK(s.struct_size == sizeof s);
    CHECK(s.capacity_bytes == (8u << 20));
    CHECK(s.hits >= 1 && s.misses >= 1 && s.inserts >= 1 && s.updates >= 1 && s.deletes >= 1);
    CHECK(s.used_bytes <= s.capacity_bytes && s.data_bytes <= s.capacity_bytes);
    CHECK(s.entries <= s.index_slots && s.index_slots > 0);
    CHECK(s.evictions == 0 && s.expirations == 0 && s.get_or_set_waits == 0);
    CHECK(s.layout_version == memshelf_layout_version());
    CHECK(s.max_value_size > 0 && s.max_value_size <= (1u << 20));
    CHECK(s.lock_takeovers == 0 && s.lease_takeovers == 0);
    CHECK(s.promotions < 1000 && s.reinsertions < 1000 && s.ghosts < s.index_slots &&
          s.ghost_hits < 1000);
    CHECK(s.moved_to_main < 1000 && s._reserved0 == 0);
    CHECK(sizeof s == 240 && offsetof(memshelf_stats, moved_to_main) == 176);
    CHECK(offsetof(memshelf_stats, get_samples) == 184);
    /* Sampled latency and hot-key share (fields appended after moved_to_main). */
    CHECK(s.get_samples < 1000 && s.put_samples < 1000);
    CHECK(s.get_p50_ns <= s.get_p99_ns && s.put_p50_ns <= s.put_p99_ns);
    CHECK(s.hot_key_share >= 0.0 && s.hot_key_share <= 1.0);

    /* A program built against the first header (struct_size 176, without
     * moved_to_main) gets the fields it knows and nothing is written past. */
    memset(&s, 0xff, sizeof s);
    s.struct_size = offsetof(memshelf_stats, moved_to_main);
    CHECK_OK(memshelf_get_stats(c, &s));
    CHECK(s.struct_size == 176 && s.capacity_bytes == (8u << 20));
    CHECK(s.layout_version == memshelf_layout_version() && s._reserved0 == 0);
    CHECK(s.moved_to_main == UINT64_MAX);

    /* A program built against the second header (struct_size 184, up to
     * moved_to_main) gets moved_to_main and nothing of the latency fields. */
    memset(&s, 0xff, sizeof s);
    s.struct_size = offsetof(memshelf_stats, get_samples);
    CHECK_OK(memshelf_get_stats(c, &s));
    CHECK(s.struct_size == 184 && s.moved_to_main < 1000);
    CHECK(s.get_samples == UINT64_MAX && s.put_p99_ns == UINT64_MAX);

    memset(&big, 0xff, sizeof big);
    big.s.struct_size = sizeof big;
    CHECK_OK(memshelf_get_stats(c, &big.s));
    CHECK(big.newer[0] == 0 && big.newer[1] == 0 && big.s.struct_size == sizeof big);
    CHECK(big.s.capacity_bytes == s.capacity_bytes);

    s.struct_size = 16;
    CHECK_STATUS(memshelf_get_stats(c, &s), MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(memshelf_get_stats(c, NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get_stats(NULL, &s), MEMSHELF_ERR_NULL_ARGUMENT);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

/* Sampled latency and hot keys. */
static void test_hot_keys_and_latency(void) {
    char name[64];
    memshelf_cache *c = open_new("hot", name, sizeof name);
    memshelf_stats s;
    uint8_t buf[64], small[2];
    size_t offs[4], lens[4], n = 99, needed = 0;
    uint64_t counts[4];

    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    CHECK_OK(memshelf_get_stats(c, &s));
    CHECK(s.get_samples == 0 && s.get_p50_ns == 0 && s.get_p99_ns == 0);
    CHECK(s.hot_key_share == 0.0);
    CHECK_OK(memshelf_hot_keys(c, 4, buf, sizeof buf, offs, lens, counts, &n, &needed));
    CHECK(n == 0 && needed == 0);

    CHECK_OK(memshelf_put(c, K("hot"), K("1"), 0, NULL, 0));
    CHECK_OK(memshelf_put(c, K("cold"), K("2"), 0, NULL, 0));
    for (int i = 0; i < 10000; i++) {
        size_t len;
        CHECK_OK(memshelf_get(c, K("hot"), buf, sizeof buf, &len));
    }
    for (int i = 0; i < 1000; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "k%d", i);
        CHECK_OK(memshelf_put(c, (const uint8_t *)k, (size_t)kl, K("v"), 0, NULL, 0));
    }
    CHECK_OK(memshelf_hot_keys(c, 4, buf, sizeof buf, offs, lens, counts, &n, &needed));
    CHECK(n >= 1 && n <= 4);
    CHECK(lens[0] == 3 && memcmp(buf + offs[0], "hot", 3) == 0 && counts[0] > 0);
    for (size_t i = 1; i < n; i++) CHECK(counts[i] <= counts[i - 1]);
    CHECK_OK(memshelf_hot_keys(c, 1, buf, sizeof buf, offs, lens, counts, &n, &needed));
    CHECK(n == 1 && needed == 3);
    /* Too small: the size needed. */
    CHECK_STATUS(memshelf_hot_keys(c, 1, small, sizeof small, offs, lens, counts, &n, &needed),
                 MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == 3 && strstr(memshelf_last_error(), "3 bytes") != NULL);
    CHECK_STATUS(memshelf_hot_keys(c, 1, buf, sizeof buf, NULL, lens, counts, &n, &needed),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_hot_keys(c, 1, buf, sizeof buf, offs, lens, counts, NULL, &needed),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_hot_keys(NULL, 1, buf, sizeof buf, offs, lens, counts, &n, NULL),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_OK(memshelf_hot_keys(c, 0, NULL, 0, NULL, NULL, NULL, &n, NULL));
    CHECK(n == 0);

    CHECK_OK(memshelf_get_stats(c, &s));
    /* At least one sample per 96 operations of each kind (intervals 32-95). */
    CHECK(s.get_samples >= 10000 / 96 && s.put_samples >= 1000 / 96);
    CHECK(s.get_p50_ns > 0 && s.get_p50_ns <= s.get_p99_ns);
    CHECK(s.put_p50_ns > 0 && s.put_p50_ns <= s.put_p99_ns);
    /* Upper bounds of log2 buckets: powers of two. */
    CHECK((s.get_p50_ns & (s.get_p50_ns - 1)) == 0 && (s.put_p99_ns & (s.put_p99_ns - 1)) == 0);
    CHECK(s.hot_key_share > 0.9 && s.hot_key_share <= 1.0);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

/* Dump and load across segments of other capacities. */
static void test_dump_load(void) {
    char name[64], other[64], path[128], cut[160];
    memshelf_cache *c = open_new("dump", name, sizeof name);
    memshelf_options o;
    memshelf_cache *d = NULL;
    memshelf_dump_report dr;
    memshelf_load_report lr;
    uint8_t buf[2048], big[1000];
    size_t len;
    uint64_t ms;

    memset(big, 'x', sizeof big);
    CHECK_OK(memshelf_put(c, K("a"), K("1"), 300000, NULL, 0));
    CHECK_OK(memshelf_put(c, K("b"), big, sizeof big, 0, NULL, 0));
    snprintf(path, sizeof path, "/tmp/%s.dump", name);
    memset(&dr, 0xff, sizeof dr);
    dr.struct_size = sizeof dr;
    CHECK_OK(memshelf_dump(c, path, &dr));
    CHECK(dr.struct_size == sizeof dr && dr.entries == 2 && dr.vanished == 0 && dr.bytes > 1000);
    CHECK_OK(memshelf_dump(c, path, NULL));

    test_name(other, sizeof other, "dump-other");
    REQUIRE_OK(memshelf_options_init(&o));
    o.capacity = 16u << 20;
    REQUIRE_OK(memshelf_open(other, &o, &d));
    CHECK_OK(memshelf_put(d, K("a"), K("newer"), 0, NULL, 0));
    memset(&lr, 0xff, sizeof lr);
    lr.struct_size = sizeof lr;
    CHECK_OK(memshelf_load(d, path, &lr));
    CHECK(lr.records == 2 && lr.loaded == 1 && lr.kept_newer == 1 && lr.expired == 0);
    CHECK(lr.rejected == 0 && lr.expected == 2 && lr.skipped == 0 && lr.complete == 1);
    CHECK(lr.problem[0] == '\0' && lr._reserved0 == 0);
    CHECK_OK(memshelf_get(d, K("a"), buf, sizeof buf, &len));
    CHECK(len == 5 && memcmp(buf, "newer", 5) == 0);
    CHECK_OK(memshelf_get(d, K("b"), buf, sizeof buf, &len));
    CHECK(len == sizeof big && memcmp(buf, big, sizeof big) == 0);
    CHECK_OK(memshelf_clear(d));
    CHECK_OK(memshelf_load(d, path, NULL));
    CHECK_OK(memshelf_ttl(d, K("a"), &ms));
    CHECK(ms > 290000 && ms <= 300000);

    /* A truncated dump: its valid prefix loads, the report says what was skipped. */
    snprintf(cut, sizeof cut, "%s.cut", path);
    FILE *in = fopen(path, "rb"), *out = fopen(cut, "wb");
    REQUIRE(in != NULL && out != NULL);
    size_t total = fread(buf, 1, sizeof buf, in);
    REQUIRE(total > 10 && total < sizeof buf);
    REQUIRE(fwrite(buf, 1, total - 10, out) == total - 10);
    fclose(in);
    fclose(out);
    CHECK_OK(memshelf_clear(d));
    CHECK_OK(memshelf_load(d, cut, &lr));
    CHECK(lr.complete == 0 && lr.expected == 2 && lr.records == 1 && lr.skipped == 1);
    CHECK(lr.loaded == 1 && strstr(lr.problem, "truncated") != NULL);

    CHECK_STATUS(memshelf_load(d, "/nonexistent/memshelf.dump", &lr), MEMSHELF_ERR_IO);
    CHECK_STATUS(memshelf_load(d, NULL, &lr), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_dump(NULL, path, NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    lr.struct_size = 4;
    CHECK_STATUS(memshelf_load(d, path, &lr), MEMSHELF_ERR_INVALID_ARGUMENT);
    remove(path);
    remove(cut);
    memshelf_close(c);
    memshelf_close(d);
    CHECK_OK(memshelf_unlink(name));
    CHECK_OK(memshelf_unlink(other));
}

/* get_or_set factories. */
struct factory_ctx {
    int calls;
    int fail_with;          /* non-zero: return it */
    const char *value;      /* NULL: no value */
    size_t value_len;
    memshelf_cache *delete_from; /* delete the key while "computing" */
};

static int32_t factory(void *ctx_, const uint8_t *key, size_t key_len, memshelf_fill *fill) {
    struct factory_ctx *ctx = (struct factory_ctx *)ctx_;
    ctx->calls++;
    if (ctx->delete_from != NULL) {
        memshelf_delete(ctx->delete_from, key, key_len, NULL);
    }
    if (ctx->fail_with != 0) {
        return ctx->fail_with;
    }
    if (ctx->value != NULL) {
        if (memshelf_fill_set(fill, (const uint8_t *)"first", 5) != MEMSHELF_OK) {
            return 99;
        }
        /* the second call replaces the first */
        if (memshelf_fill_set(fill, (const uint8_t *)ctx->value, ctx->value_len) !=
            MEMSHELF_OK) {
            return 99;
        }
    }
    if (memshelf_fill_set(NULL, NULL, 0) != MEMSHELF_ERR_NULL_ARGUMENT ||
        memshelf_fill_set(fill, NULL, 3) != MEMSHELF_ERR_NULL_ARGUMENT) {
        return 98;
    }
    return 0;
}

static void test_get_or_set(void) {
    char name[64];
    memshelf_options oo;
    memshelf_cache *c = NULL;
    memshelf_get_or_set_options o;
    struct factory_ctx ctx;
    uint8_t *value = (uint8_t *)name; /* not NULL: must be reset */
    size_t len = 7;
    uint8_t buf[16];
    size_t blen;
    memshelf_bytes tag;
    static char big[2048];
    uint64_t ms;

    test_name(name, sizeof name, "gos");
    REQUIRE_OK(memshelf_options_init(&oo));
    oo.capacity = 4u << 20;
    oo.max_value_size = 1024;
    REQUIRE_OK(memshelf_open(name, &oo, &c));
    memset(&ctx, 0, sizeof ctx);
    ctx.value = "computed";
    ctx.value_len = 8;

    /* A miss runs the factory once; then a hit. */
    CHECK_OK(memshelf_get_or_set(c, K("g"), NULL, factory, &ctx, &value, &len));
    CHECK(ctx.calls == 1 && len == 8 && value != NULL && memcmp(value, "computed", 8) == 0);
    free(value);
    CHECK_OK(memshelf_get_or_set(c, K("g"), NULL, factory, &ctx, &value, &len));
    CHECK(ctx.calls == 1 && len == 8 && memcmp(value, "computed", 8) == 0);
    memshelf_free(value);
    CHECK_OK(memshelf_get(c, K("g"), buf, sizeof buf, &blen));
    CHECK(blen == 8);

    /* Options: TTL and tags. */
    CHECK_STATUS(memshelf_get_or_set_options_init(NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    REQUIRE_OK(memshelf_get_or_set_options_init(&o));
    CHECK(o.struct_size == sizeof o && o.lease_ms == 10000 && o.ntags == 0);
    tag.data = (const uint8_t *)"grp";
    tag.len = 3;
    o.ttl_ms = 60000;
    o.tags = &tag;
    o.ntags = 1;
    ctx.calls = 0;
    CHECK_OK(memshelf_get_or_set(c, K("tagged"), &o, factory, &ctx, &value, &len));
    CHECK(ctx.calls == 1);
    free(value);
    CHECK_OK(memshelf_ttl(c, K("tagged"), &ms));
    CHECK(ms > 0 && ms <= 60000);
    CHECK_OK(memshelf_invalidate_tag(c, K("grp")));
    CHECK_STATUS(memshelf_get(c, K("tagged"), buf, sizeof buf, &blen), MEMSHELF_MISS);

    /* An empty value: a non-NULL buffer of length 0. */
    ctx.value = "";
    ctx.value_len = 0;
    CHECK_OK(memshelf_get_or_set(c, K("empty"), NULL, factory, &ctx, &value, &len));
    CHECK(value != NULL && len == 0);
    free(value);

    /* No value: MISS, nothing stored; with negative_ttl the absence is cached. */
    ctx.value = NULL;
    ctx.calls = 0;
    CHECK_STATUS(memshelf_get_or_set(c, K("none"), NULL, factory, &ctx, &value, &len),
                 MEMSHELF_MISS);
    CHECK(value == NULL && len == 0 && ctx.calls == 1);
    CHECK_STATUS(memshelf_get_or_set(c, K("none"), NULL, factory, &ctx, &value, &len),
                 MEMSHELF_MISS);
    CHECK(ctx.calls == 2);
    REQUIRE_OK(memshelf_get_or_set_options_init(&o));
    o.negative_ttl_ms = 60000;
    CHECK_STATUS(memshelf_get_or_set(c, K("neg"), &o, factory, &ctx, &value, &len),
                 MEMSHELF_MISS);
    CHECK_STATUS(memshelf_get_or_set(c, K("neg"), &o, factory, &ctx, &value, &len),
                 MEMSHELF_MISS);
    CHECK(ctx.calls == 3);
    CHECK_STATUS(memshelf_get(c, K("neg"), buf, sizeof buf, &blen), MEMSHELF_MISS);

    /* A failing factory: its code in the message; a later call retries. */
    ctx.fail_with = 7;
    CHECK_STATUS(memshelf_get_or_set(c, K("fails"), NULL, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_FACTORY);
    CHECK(strstr(memshelf_last_error(), "7") != NULL && value == NULL);
    ctx.fail_with = 0;
    ctx.value = "ok";
    ctx.value_len = 2;
    CHECK_OK(memshelf_get_or_set(c, K("fails"), NULL, factory, &ctx, &value, &len));
    CHECK(len == 2);
    free(value);

    /* A value over max_value_size. */
    memset(big, 'b', sizeof big);
    ctx.value = big;
    ctx.value_len = sizeof big;
    CHECK_STATUS(memshelf_get_or_set(c, K("big"), NULL, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_VALUE_TOO_LARGE);
    CHECK(value == NULL);

    /* A delete while the factory runs voids the fill: returned, not stored. */
    ctx.value = "racy";
    ctx.value_len = 4;
    ctx.delete_from = c;
    CHECK_OK(memshelf_get_or_set(c, K("racy"), NULL, factory, &ctx, &value, &len));
    CHECK(len == 4 && memcmp(value, "racy", 4) == 0);
    free(value);
    CHECK_STATUS(memshelf_get(c, K("racy"), buf, sizeof buf, &blen), MEMSHELF_MISS);
    ctx.delete_from = NULL;

    /* Errors. */
    CHECK_STATUS(memshelf_get_or_set(c, K("g"), NULL, NULL, &ctx, &value, &len),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get_or_set(NULL, K("g"), NULL, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get_or_set(c, K("g"), NULL, factory, &ctx, NULL, &len),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get_or_set(c, K("g"), NULL, factory, &ctx, &value, NULL),
                 MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_get_or_set(c, NULL, 0, NULL, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_KEY_TOO_LONG);
    REQUIRE_OK(memshelf_get_or_set_options_init(&o));
    o.ttl_ms = UINT64_MAX - 1;
    CHECK_STATUS(memshelf_get_or_set(c, K("x"), &o, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_INVALID_TTL);
    REQUIRE_OK(memshelf_get_or_set_options_init(&o));
    o.ntags = MEMSHELF_MAX_TAGS + 1;
    o.tags = &tag;
    CHECK_STATUS(memshelf_get_or_set(c, K("x"), &o, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_get_or_set_options_init(&o));
    o.struct_size = 3;
    CHECK_STATUS(memshelf_get_or_set(c, K("x"), &o, factory, &ctx, &value, &len),
                 MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK(value == NULL && len == 0);
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
}

static void check_message(const memshelf_message *m, const char *want) {
    char buf[512];
    size_t len = 0;
    CHECK_OK(memshelf_message_build(m, buf, sizeof buf, &len));
    CHECK(len == strlen(want) && strcmp(buf, want) == 0);
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "  got  %s\n  want %s\n", buf, want);
    }
}

static void test_messages(void) {
    memshelf_message m;
    memshelf_bytes keys[2];
    const uint8_t binary[3] = {0xff, 0x00, 0x01};
    char buf[64];
    size_t len = 0;

    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_DEL));
    keys[0].data = (const uint8_t *)"user:42";
    keys[0].len = 7;
    keys[1].data = (const uint8_t *)"user:43";
    keys[1].len = 7;
    m.keys = keys;
    m.nkeys = 2;
    check_message(&m, "{\"v\":1,\"op\":\"del\",\"keys\":[\"user:42\",\"user:43\"]}");
    m.cache = "users";
    m.origin = "host-a.1234";
    m.seq = 17;
    m.ts_ms = 1700000000000ull;
    check_message(&m, "{\"v\":1,\"op\":\"del\",\"keys\":[\"user:42\",\"user:43\"],"
                      "\"cache\":\"users\",\"origin\":\"host-a.1234\",\"seq\":17,"
                      "\"ts\":1700000000000}");
    /* Too small: the length, nothing written; NULL buffer asks for the size. */
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(memshelf_message_build(&m, buf, 10, &len), MEMSHELF_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 60 && buf[0] == 'x');
    CHECK_STATUS(memshelf_message_build(&m, NULL, 0, &len), MEMSHELF_ERR_BUFFER_TOO_SMALL);

    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_DEL));
    keys[0].data = binary;
    keys[0].len = 3;
    m.keys = keys;
    m.nkeys = 1;
    check_message(&m, "{\"v\":1,\"op\":\"del\",\"keys_b64\":[\"/wAB\"]}");
    /* Exactly enough room: JSON plus NUL. */
    CHECK_OK(memshelf_message_build(&m, buf, strlen("{\"v\":1,\"op\":\"del\",\"keys_b64\":[\"/wAB\"]}") + 1, &len));

    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_DEL_PREFIX));
    m.arg.data = (const uint8_t *)"user:";
    m.arg.len = 5;
    check_message(&m, "{\"v\":1,\"op\":\"del_prefix\",\"prefix\":\"user:\"}");
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_TAG));
    m.arg.data = (const uint8_t *)"product:\"7\"";
    m.arg.len = 11;
    check_message(&m, "{\"v\":1,\"op\":\"tag\",\"tag\":\"product:\\\"7\\\"\"}");
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_CLEAR));
    m.cache = "sessions";
    check_message(&m, "{\"v\":1,\"op\":\"clear\",\"cache\":\"sessions\"}");
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_HEARTBEAT));
    check_message(&m, "{\"v\":1,\"op\":\"hb\"}");

    /* Errors. */
    CHECK_STATUS(memshelf_message_init(&m, 0), MEMSHELF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(memshelf_message_init(NULL, MEMSHELF_MSG_CLEAR), MEMSHELF_ERR_NULL_ARGUMENT);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_CLEAR));
    CHECK_STATUS(memshelf_message_build(NULL, buf, sizeof buf, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(memshelf_message_build(&m, NULL, 5, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    m.op = 42;
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_DEL));
    m.nkeys = 2; /* keys NULL */
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_TAG));
    m.arg.len = 4; /* arg.data NULL */
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_NULL_ARGUMENT);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_CLEAR));
    m.cache = "bad\xff";
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_INVALID_ARGUMENT);
    /* The engine's rules (core::message), the same in every language: a
     * del names at least one key, a prefix or tag is not empty. */
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_DEL));
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_DEL_PREFIX));
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_INVALID_ARGUMENT);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_CLEAR));
    m.cache = "bad/name";
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_INVALID_NAME);
    REQUIRE_OK(memshelf_message_init(&m, MEMSHELF_MSG_CLEAR));
    m.struct_size = 0;
    CHECK_STATUS(memshelf_message_build(&m, buf, sizeof buf, &len), MEMSHELF_ERR_INVALID_ARGUMENT);
}

static void test_unlink_and_path(void) {
    char name[64];
    char path[128];
    memshelf_options o;
    memshelf_cache *c = NULL;
    uint8_t buf[16];
    size_t len;

    test_name(name, sizeof name, "unlink");
    REQUIRE_OK(memshelf_open(name, NULL, &c));
    CHECK_OK(memshelf_put(c, K("k"), K("v"), 0, NULL, 0));
    CHECK_OK(memshelf_unlink(name));
    /* Still attached: the mapping keeps working. */
    CHECK_OK(memshelf_get(c, K("k"), buf, sizeof buf, &len));
    memshelf_close(c);
    REQUIRE_OK(memshelf_options_init(&o));
    o.create = 0;
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_NOT_FOUND);
    CHECK_STATUS(memshelf_unlink(name), MEMSHELF_ERR_NOT_FOUND);
    CHECK_STATUS(memshelf_unlink("a/b"), MEMSHELF_ERR_INVALID_NAME);
    CHECK_STATUS(memshelf_unlink(NULL), MEMSHELF_ERR_NULL_ARGUMENT);

    /* A file-backed segment. */
    snprintf(path, sizeof path, "/tmp/memshelf-ctest-%ld.seg", (long)getpid());
    REQUIRE_OK(memshelf_options_init(&o));
    o.capacity = 1u << 20;
    o.path = path;
    CHECK_OK(memshelf_open(name, &o, &c));
    CHECK_OK(memshelf_put(c, K("file"), K("backed"), 0, NULL, 0));
    memshelf_close(c);
    o.create = 0;
    CHECK_OK(memshelf_open(name, &o, &c));
    CHECK_OK(memshelf_get(c, K("file"), buf, sizeof buf, &len));
    CHECK(len == 6 && memcmp(buf, "backed", 6) == 0);
    memshelf_close(c);
    CHECK(access(path, F_OK) == 0);
    CHECK_OK(memshelf_unlink_path(path));
    CHECK(access(path, F_OK) != 0);
    CHECK_STATUS(memshelf_unlink_path(path), MEMSHELF_ERR_IO);
    CHECK_STATUS(memshelf_unlink_path(NULL), MEMSHELF_ERR_NULL_ARGUMENT);
    o.path = "/tmp/bad\xff";
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_INVALID_ARGUMENT);
}

int main(void) {
    test_versions();
    test_open_errors();
    test_get_put();
    test_get_many();
    test_value_limit();
    test_ttl_touch();
    test_add_delete();
    test_incr();
    test_tags_prefix_clear();
    test_keys();
    test_stats();
    test_hot_keys_and_latency();
    test_dump_load();
    test_get_or_set();
    test_messages();
    test_unlink_and_path();
    return check_summary("test_api");
}
