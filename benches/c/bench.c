/* get/put latency of the C ABI: 16-byte keys, 100-byte values, 1 and 2
 * processes on one segment. Run with scripts/bench-c.sh.
 *   bench [OPS_PER_PHASE] [KEYS]
 * Each process opens the segment itself, then times OPS gets (all hits,
 * into a caller buffer) and OPS puts (replacing existing keys). Processes
 * start each phase together (a pipe barrier). Rounds: 1 process on the
 * freshly written segment, 2 processes, 1 process again. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memshelf.h"

#define KEY_LEN 16
#define VALUE_LEN 100

static void die(const char *what, memshelf_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, memshelf_strerror(st), memshelf_last_error());
    exit(1);
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Every key, built before timing (children inherit it through fork). */
static char *keys;
#define KEY(i) ((const uint8_t *)keys + (size_t)(i) * KEY_LEN)

/* One process's run: results (ns/op for get and put) go to `out`. */
static void worker(const char *name, long ops, long nkeys, int id, int go_get, int go_put,
                   int out) {
    memshelf_cache *c = NULL;
    memshelf_status st;
    uint8_t value[VALUE_LEN], buf[VALUE_LEN];
    size_t len;
    long i, k, misses = 0;
    double t0, res[2];
    char b;

    if ((st = memshelf_open(name, NULL, &c)) != MEMSHELF_OK) die("open", st);
    memset(value, 'a' + id, sizeof value);
    /* Warm-up, untimed: fault this process's mapping in. */
    for (k = 0; k < nkeys; k++) {
        memshelf_get(c, KEY(k), KEY_LEN, buf, sizeof buf, &len);
    }
    if (read(go_get, &b, 1) != 1) exit(1);
    t0 = now_ns();
    for (i = 0, k = id * 7919; i < ops; i++, k += 7919) {
        st = memshelf_get(c, KEY(k % nkeys), KEY_LEN, buf, sizeof buf, &len);
        if (st != MEMSHELF_OK) misses++;
    }
    res[0] = (now_ns() - t0) / (double)ops;
    if (read(go_put, &b, 1) != 1) exit(1);
    t0 = now_ns();
    for (i = 0, k = id * 7919; i < ops; i++, k += 7919) {
        st = memshelf_put(c, KEY(k % nkeys), KEY_LEN, value, sizeof value, 0, NULL, 0);
        if (st != MEMSHELF_OK) die("put", st);
    }
    res[1] = (now_ns() - t0) / (double)ops;
    if (misses > 0) fprintf(stderr, "process %d: %ld misses\n", id, misses);
    if (write(out, res, sizeof res) != (ssize_t)sizeof res) exit(1);
    memshelf_close(c);
}

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 2000000;
    long nkeys = argc > 2 ? atol(argv[2]) : 100000;
    char name[64], key[32];
    uint8_t value[VALUE_LEN];
    memshelf_options o;
    memshelf_cache *c = NULL;
    memshelf_status st;
    /* 1 process right after the keys were first written, 2 processes, then
     * 1 process again on the rewritten segment. */
    static const int rounds[3] = {1, 2, 1};
    int procs, p, round;
    long i;

    snprintf(name, sizeof name, "bench-c-%ld", (long)getpid());
    memshelf_options_init(&o);
    o.capacity = 256u << 20;
    if ((st = memshelf_open(name, &o, &c)) != MEMSHELF_OK) die("open", st);
    memset(value, 'v', sizeof value);
    keys = malloc((size_t)nkeys * KEY_LEN);
    if (keys == NULL) return 1;
    for (i = 0; i < nkeys; i++) {
        snprintf(key, sizeof key, "k%015ld", i % 1000000000000000L);
        memcpy(keys + (size_t)i * KEY_LEN, key, KEY_LEN);
        st = memshelf_put(c, KEY(i), KEY_LEN, value, sizeof value, 0, NULL, 0);
        if (st != MEMSHELF_OK) die("put", st);
    }
    printf("memshelf C ABI %s: %ld keys of %d B, values of %d B, %ld ops per phase\n",
           memshelf_version(), nkeys, KEY_LEN, VALUE_LEN, ops);
    for (round = 0; round < 3; round++) {
        procs = rounds[round];
        int go_get[2], go_put[2], res[2];
        double get_ns = 0, put_ns = 0, r[2];
        if (pipe(go_get) || pipe(go_put) || pipe(res)) return 1;
        for (p = 0; p < procs; p++) {
            if (fork() == 0) {
                worker(name, ops, nkeys, p, go_get[0], go_put[0], res[1]);
                _exit(0);
            }
        }
        /* Everyone has (or will soon have) opened: start the get phase, then
         * the put phase once every process is waiting for it. */
        for (p = 0; p < procs; p++) {
            if (write(go_get[1], "g", 1) != 1) return 1;
        }
        for (p = 0; p < procs; p++) {
            if (write(go_put[1], "p", 1) != 1) return 1;
        }
        for (p = 0; p < procs; p++) {
            if (read(res[0], r, sizeof r) != (ssize_t)sizeof r) return 1;
            get_ns += r[0];
            put_ns += r[1];
        }
        while (wait(NULL) > 0) {
        }
        get_ns /= procs;
        put_ns /= procs;
        printf("%d process%s: get %6.0f ns/op (%5.1f M ops/s in all), put %6.0f ns/op "
               "(%5.1f M ops/s in all)\n",
               procs, procs == 1 ? "  " : "es", get_ns, procs * 1e3 / get_ns, put_ns,
               procs * 1e3 / put_ns);
        close(go_get[0]), close(go_get[1]), close(go_put[0]), close(go_put[1]);
        close(res[0]), close(res[1]);
    }
    memshelf_close(c);
    memshelf_unlink(name);
    free(keys);
    return 0;
}
