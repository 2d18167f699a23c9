/* A /dev/shm smaller than the segment (Docker's default is 64 MiB) refuses
 * it at open with MEMSHELF_ERR_NO_SPACE and a message that names /dev/shm,
 * leaves nothing behind, and a segment that fits still opens. Run by
 * scripts/test-c.sh in a private mount namespace with a 64 MiB tmpfs on
 * /dev/shm (as `docker run` without --shm-size). */
#include <sys/stat.h>

#include "check.h"

int main(void) {
    char name[64];
    char path[128];
    struct stat st;
    memshelf_options o;
    memshelf_cache *c = NULL;
    test_name(name, sizeof name, "small-shm");
    snprintf(path, sizeof path, "/dev/shm/memshelf.%s", name);

    CHECK_OK(memshelf_options_init(&o));
    o.capacity = 256u << 20;
    CHECK_STATUS(memshelf_open(name, &o, &c), MEMSHELF_ERR_NO_SPACE);
    CHECK(c == NULL);
    CHECK(strstr(memshelf_last_error(), "/dev/shm") != NULL);
    CHECK(strstr(memshelf_last_error(), "268435456") != NULL);
    fprintf(stderr, "  (the error: %s)\n", memshelf_last_error());
    CHECK(stat(path, &st) != 0); /* no half-made segment left */

    o.capacity = 32u << 20;
    CHECK_OK(memshelf_open(name, &o, &c));
    CHECK_OK(memshelf_put(c, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, 0, NULL, 0));
    memshelf_close(c);
    CHECK_OK(memshelf_unlink(name));
    return check_summary("test_small_shm");
}
