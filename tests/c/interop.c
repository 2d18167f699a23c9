/* The C half of the cross-language test (driven by ffi/tests/interop.rs):
 *   interop write NAME   puts c:0..99 = "from C <i>", tagged, and incr
 *   interop read NAME    checks rust:0..99 = "from Rust <i>" and the counter
 * Exits 0 when every check passed. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

int main(int argc, char **argv) {
    memshelf_options o;
    memshelf_cache *c = NULL;
    char key[32], want[64];
    uint8_t buf[64];
    size_t len;
    int i;
    int64_t n = 0;
    memshelf_bytes tag;

    if (argc != 3) {
        fprintf(stderr, "usage: %s write|read NAME\n", argv[0]);
        return 2;
    }
    REQUIRE_OK(memshelf_options_init(&o));
    o.create = 0; /* the Rust side created it */
    REQUIRE_OK(memshelf_open(argv[2], &o, &c));
    if (strcmp(argv[1], "write") == 0) {
        tag.data = (const uint8_t *)"from-c";
        tag.len = 6;
        for (i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "c:%d", i);
            snprintf(want, sizeof want, "from C %d", i);
            CHECK_OK(memshelf_put(c, K(key), K(want), 60000, &tag, 1));
        }
        CHECK_OK(memshelf_incr(c, K("counter"), 1, 0, &n));
    } else {
        for (i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "rust:%d", i);
            snprintf(want, sizeof want, "from Rust %d", i);
            CHECK_OK(memshelf_get(c, K(key), buf, sizeof buf, &len));
            CHECK(len == strlen(want) && memcmp(buf, want, len) == 0);
        }
        CHECK_OK(memshelf_get(c, K("counter"), buf, sizeof buf, &len));
        CHECK(len == 1 && buf[0] == '2');
        /* The Rust side invalidated the tag of the C writes. */
        CHECK_STATUS(memshelf_get(c, K("c:0"), buf, sizeof buf, &len), MEMSHELF_MISS);
    }
    memshelf_close(c);
    return check_summary("interop");
}
