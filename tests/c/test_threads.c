/* One handle shared by several threads: puts and gets never see a torn
 * value, and get_or_set runs its factory once however many threads miss. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "check.h"

#define THREADS 4
#define ROUNDS 2000
#define VALUE_LEN 100

static memshelf_cache *cache;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int factory_calls;
static int torn_values;
static int errors;

/* Counts an unexpected status, describing the first few. */
static int unexpected(const char *what, memshelf_status st) {
    static int shown;
    pthread_mutex_lock(&lock);
    if (shown++ < 5) {
        fprintf(stderr, "%s returned %d (%s): %s\n", what, (int)st, memshelf_strerror(st),
                memshelf_last_error());
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

static void *writer_reader(void *arg) {
    int id = (int)(intptr_t)arg;
    uint8_t value[VALUE_LEN];
    uint8_t buf[VALUE_LEN];
    char key[32];
    size_t len, i;
    int r, bad = 0, err = 0;
    memshelf_status st;

    for (r = 0; r < ROUNDS; r++) {
        /* A shared key every thread writes with its own byte pattern. */
        memset(value, 'a' + id, sizeof value);
        st = memshelf_put(cache, K("shared"), value, sizeof value, 0, NULL, 0);
        if (st != MEMSHELF_OK) {
            err += unexpected("put", st);
        }
        st = memshelf_get(cache, K("shared"), buf, sizeof buf, &len);
        if (st == MEMSHELF_OK) {
            for (i = 1; i < len; i++) {
                bad += buf[i] != buf[0];
            }
            bad += len != VALUE_LEN || buf[0] < 'a' || buf[0] >= 'a' + THREADS;
        } else {
            err += unexpected("get", st);
        }
        /* And keys of its own. */
        snprintf(key, sizeof key, "t%d:%d", id, r % 64);
        st = memshelf_put(cache, K(key), value, sizeof value, 0, NULL, 0);
        if (st != MEMSHELF_OK) {
            err += unexpected("put", st);
        }
        if (memshelf_get(cache, K(key), buf, sizeof buf, &len) != MEMSHELF_OK ||
            len != VALUE_LEN || buf[0] != 'a' + id) {
            bad++;
        }
        st = memshelf_incr(cache, K("counter"), 1, 0, NULL);
        if (st != MEMSHELF_OK) {
            err += unexpected("incr", st);
        }
    }
    pthread_mutex_lock(&lock);
    torn_values += bad;
    errors += err;
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int32_t slow_factory(void *ctx, const uint8_t *key, size_t key_len, memshelf_fill *fill) {
    struct timespec ts = {0, 50 * 1000000L};
    (void)ctx;
    (void)key;
    (void)key_len;
    pthread_mutex_lock(&lock);
    factory_calls++;
    pthread_mutex_unlock(&lock);
    nanosleep(&ts, NULL); /* the others must wait, not compute */
    return memshelf_fill_set(fill, (const uint8_t *)"expensive", 9) == MEMSHELF_OK ? 0 : 1;
}

static void *get_or_set_caller(void *arg) {
    uint8_t *value = NULL;
    size_t len = 0;
    int bad = 0;
    memshelf_status st;
    (void)arg;
    st = memshelf_get_or_set(cache, K("once"), NULL, slow_factory, NULL, &value, &len);
    if (st != MEMSHELF_OK) {
        bad = unexpected("get_or_set", st);
    } else if (len != 9 || memcmp(value, "expensive", 9) != 0) {
        bad = 1;
    }
    free(value);
    pthread_mutex_lock(&lock);
    errors += bad;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void) {
    char name[64];
    memshelf_options o;
    pthread_t threads[THREADS];
    uint8_t buf[32];
    size_t len;
    memshelf_stats s;
    intptr_t i;

    test_name(name, sizeof name, "threads");
    REQUIRE_OK(memshelf_options_init(&o));
    o.capacity = 64u << 20; /* room for every write: nothing is evicted */
    REQUIRE_OK(memshelf_open(name, &o, &cache));

    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, writer_reader, (void *)i) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    CHECK(torn_values == 0);
    CHECK(errors == 0);
    CHECK_OK(memshelf_get(cache, K("counter"), buf, sizeof buf, &len));
    CHECK(len == 4 && memcmp(buf, "8000", 4) == 0);

    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, get_or_set_caller, NULL) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    CHECK(errors == 0);
    CHECK(factory_calls == 1);
    s.struct_size = sizeof s;
    CHECK_OK(memshelf_get_stats(cache, &s));
    CHECK(s.get_or_set_waits <= THREADS - 1);
    CHECK(s.evictions == 0);

    memshelf_close(cache);
    CHECK_OK(memshelf_unlink(name));
    return check_summary("test_threads");
}
