// The C++ RAII wrapper (include/memshelf.hpp): every method, errors as
// exceptions, move semantics, close.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "check.h"
#include "memshelf.hpp"

using namespace std::chrono_literals;

// Checks that `stmt` throws memshelf::error with `code`.
#define CHECK_THROWS(stmt, want)                                                       \
    do {                                                                               \
        bool thrown_ = false;                                                          \
        try {                                                                          \
            stmt;                                                                      \
        } catch (const memshelf::error &e) {                                           \
            thrown_ = e.code() == (want);                                              \
            if (!thrown_) {                                                            \
                fprintf(stderr, "%s:%d: wrong code %d: %s\n", __FILE__, __LINE__,      \
                        (int)e.code(), e.what());                                      \
            }                                                                          \
        }                                                                              \
        CHECK(thrown_);                                                                \
    } while (0)

int main() {
    char name[64];
    test_name(name, sizeof name, "cpp");
    {
        memshelf::options o;
        o.capacity = 8u << 20;
        memshelf::cache c = memshelf::cache::open(name, o);
        CHECK(c.is_open());

        CHECK(!c.get("missing").has_value());
        c.put("user:42", "{\"name\":\"Ada\"}");
        CHECK(c.get("user:42").value_or("") == "{\"name\":\"Ada\"}");
        std::string big(5000, 'z'); // larger than the first buffer get() tries
        c.put("big", big);
        std::string out;
        CHECK(c.get("big", out) && out == big);
        CHECK(c.get("user:42", out) && out == "{\"name\":\"Ada\"}");
        CHECK(!c.get("missing", out) && out.empty());
        c.put(std::string("bin\0key", 7), std::string("v\0v", 3));
        CHECK(c.get(std::string("bin\0key", 7)).value_or("") == std::string("v\0v", 3));

        CHECK(c.add("a", "1"));
        CHECK(!c.add("a", "2", 60s));
        CHECK(c.erase("a"));
        CHECK(!c.erase("a"));

        CHECK(c.incr("n", 40) == 40);
        CHECK(c.incr("n", 2) == 42);
        CHECK(c.get("n").value_or("") == "42");
        CHECK_THROWS(c.incr("user:42"), MEMSHELF_ERR_NOT_AN_INTEGER);

        c.put("t", "v", 60s);
        auto left = c.ttl("t");
        CHECK(left && *left > 0ms && *left <= 60s);
        CHECK(c.ttl("user:42") == memshelf::ttl_never);
        CHECK(!c.ttl("missing").has_value());
        CHECK(c.touch("t", memshelf::ttl_never));
        CHECK(c.ttl("t") == memshelf::ttl_never);
        CHECK(!c.touch("missing", 1s));
        CHECK_THROWS(c.put("t", "v", -1ms), MEMSHELF_ERR_INVALID_TTL);

        c.put("p:1", "a", memshelf::ttl_default, {"product:1", "all"});
        c.put("p:2", "b", memshelf::ttl_default, {"product:2", "all"});
        c.invalidate_tag("product:1");
        CHECK(!c.get("p:1") && c.get("p:2"));
        c.invalidate_tag("all");
        CHECK(!c.get("p:2"));

        c.put("user:1", "x");
        c.put("user:2", "y");
        auto keys = c.keys("user:");
        CHECK(keys.size() == 3);
        CHECK(c.delete_prefix("user:") == 3);
        CHECK(c.keys("user:").empty());

        int calls = 0;
        auto v = c.get_or_set("lazy", [&] {
            calls++;
            return std::optional<std::string>("computed");
        });
        CHECK(v.value_or("") == "computed" && calls == 1);
        v = c.get_or_set("lazy", [&] {
            calls++;
            return std::optional<std::string>("again");
        });
        CHECK(v.value_or("") == "computed" && calls == 1);
        memshelf::get_or_set_options go;
        go.negative_ttl = 60s;
        v = c.get_or_set("nothing", [&] { calls++; return std::optional<std::string>(); }, go);
        CHECK(!v && calls == 2);
        v = c.get_or_set("nothing", [&] { calls++; return std::optional<std::string>(); }, go);
        CHECK(!v && calls == 2);
        bool rethrown = false;
        try {
            c.get_or_set("boom", []() -> std::optional<std::string> {
                throw std::runtime_error("origin down");
            });
        } catch (const std::runtime_error &e) {
            rethrown = std::string(e.what()) == "origin down";
        }
        CHECK(rethrown);
        CHECK(!c.get("boom"));

        // Tags assigned to an options object outlive the assignment (they
        // used to be a std::initializer_list member, which dangled: ASan
        // reported stack-use-after-scope here).
        memshelf::get_or_set_options tagged;
        tagged.tags = {"reports", std::string("team:") + std::to_string(7)};
        tagged.tags.push_back("all-reports");
        tagged.ttl = 60s;
        v = c.get_or_set("report:1", [] { return std::optional<std::string>("r1"); }, tagged);
        CHECK(v.value_or("") == "r1");
        memshelf::get_or_set_options copy = tagged; // options are copyable values
        tagged.tags.clear();
        v = c.get_or_set("report:2", [] { return std::optional<std::string>("r2"); }, copy);
        CHECK(v.value_or("") == "r2");
        CHECK(c.get("report:1") && c.get("report:2"));
        c.invalidate_tag("team:7");
        CHECK(!c.get("report:1") && !c.get("report:2"));
        v = c.get_or_set("report:3", [] { return std::optional<std::string>("r3"); }, copy);
        c.invalidate_tag("all-reports");
        CHECK(!c.get("report:3"));
        // put/add take any range of strings, not only brace lists.
        std::vector<std::string> put_tags{"bulk"};
        c.put("bulk:1", "x", memshelf::ttl_default, put_tags);
        CHECK(c.add("bulk:2", "y", memshelf::ttl_default, put_tags));
        c.invalidate_tag("bulk");
        CHECK(!c.get("bulk:1") && !c.get("bulk:2"));

        // Batch reads: hits and misses in order, values larger than the
        // first buffer guess, binary keys.
        c.put("gm:1", "one");
        c.put("gm:big", std::string(3000, 'q'));
        auto many = c.get_many({"gm:1", "gm:missing", "gm:big"});
        CHECK(many.size() == 3 && many[0].value_or("") == "one" && !many[1] &&
              many[2].value_or("") == std::string(3000, 'q'));
        std::vector<std::string> gm_keys{std::string("bin\0key", 7), "gm:1"};
        auto many2 = c.get_many(gm_keys);
        CHECK(many2.size() == 2 && many2[0].value_or("") == std::string("v\0v", 3) &&
              many2[1].value_or("") == "one");
        CHECK(c.get_many(std::vector<std::string>{}).empty());

        // Hot keys: a key read far more than the others comes first.
        for (int i = 0; i < 3000; i++) {
            (void)c.get("gm:1");
        }
        auto hot = c.hot_keys(3);
        CHECK(!hot.empty() && hot.size() <= 3 && hot[0].first == "gm:1" && hot[0].second > 0);
        CHECK(c.hot_keys(0).empty());

        // Dump and load into another segment: values, TTLs and tags.
        c.put("d:tagged", "dv", 600s, {"dump-tag"});
        std::string dump_path = std::string("/tmp/") + name + ".dump";
        memshelf_dump_report dr = c.dump(dump_path);
        CHECK(dr.entries > 5);
        {
            char other[64];
            test_name(other, sizeof other, "cpp-load");
            memshelf::options lo;
            lo.capacity = 16u << 20;
            memshelf::cache loaded = memshelf::cache::open(other, lo);
            memshelf_load_report lr = loaded.load(dump_path);
            CHECK(lr.complete && lr.loaded == dr.entries && lr.skipped == 0);
            CHECK(loaded.get("gm:big").value_or("") == std::string(3000, 'q'));
            auto dl = loaded.ttl("d:tagged");
            CHECK(dl && *dl > 500s && *dl <= 600s);
            loaded.invalidate_tag("dump-tag");
            CHECK(!loaded.get("d:tagged") && loaded.get("gm:1"));
            loaded.close();
            memshelf::cache::unlink(other);
        }
        CHECK_THROWS(c.load("/nonexistent/memshelf.dump"), MEMSHELF_ERR_IO);
        std::remove(dump_path.c_str());

        memshelf_stats s = c.stats();
        CHECK(s.capacity_bytes == (8u << 20) && s.hits > 0 && s.misses > 0);

        c.clear();
        CHECK(!c.get("lazy"));

        memshelf_message m;
        memshelf_message_init(&m, MEMSHELF_MSG_TAG);
        m.arg = memshelf_bytes{reinterpret_cast<const uint8_t *>("product:7"), 9};
        CHECK(memshelf::message_json(m) == "{\"v\":1,\"op\":\"tag\",\"tag\":\"product:7\"}");

        // Moves transfer the handle; close makes later calls throw.
        memshelf::cache moved = std::move(c);
        CHECK(!c.is_open() && moved.is_open());
        CHECK_THROWS(c.get("x"), MEMSHELF_ERR_CLOSED);
        moved.put("after-move", "ok");
        CHECK(moved.get("after-move").value_or("") == "ok");
        moved.close();
        moved.close(); // idempotent
        CHECK_THROWS(moved.put("k", "v"), MEMSHELF_ERR_CLOSED);
    }
    {
        memshelf::options o;
        o.create = false;
        memshelf::cache again = memshelf::cache::open(name, o); // attach only
        CHECK(again.get("after-move").value_or("") == "ok");
    }
    CHECK_THROWS(memshelf::cache::open("bad/name"), MEMSHELF_ERR_INVALID_NAME);
    memshelf::cache::unlink(name);
    CHECK_THROWS(memshelf::cache::unlink(name), MEMSHELF_ERR_NOT_FOUND);
    memshelf::options attach;
    attach.create = false;
    CHECK_THROWS(memshelf::cache::open(name, attach), MEMSHELF_ERR_NOT_FOUND);
    return check_summary("test_cpp");
}
