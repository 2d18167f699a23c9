// memshelf.hpp: a header-only C++17 RAII wrapper over the C ABI
// (memshelf.h). Link with -lmemshelf like a C program.
//
//   auto cache = memshelf::cache::open("sessions", {/*capacity*/ 64 << 20});
//   cache.put("user:42", "{\"name\":\"Ada\"}", std::chrono::seconds(60));
//   if (auto v = cache.get("user:42")) { /* *v is a std::string */ }
//
// Errors are thrown as memshelf::error (code() is the memshelf_status).
// A cache is move-only and closes its handle when destroyed; after close()
// every call throws memshelf::error with code MEMSHELF_ERR_CLOSED. One cache
// object may be used from many threads at once, but close(), moves and
// destruction must not race other calls on the same object.
#ifndef MEMSHELF_HPP
#define MEMSHELF_HPP

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "memshelf.h"

namespace memshelf {

/// A memshelf error: the status code and the library's detailed message.
class error : public std::runtime_error {
public:
    error(memshelf_status code, const std::string &message)
        : std::runtime_error(message), code_(code) {}
    /// The memshelf_status (MEMSHELF_ERR_*).
    memshelf_status code() const noexcept { return code_; }

private:
    memshelf_status code_;
};

/// TTLs: `ttl_default` (0) = the segment's default, `ttl_never` = no expiry.
using ttl_t = std::chrono::milliseconds;
inline constexpr ttl_t ttl_default{0};
inline constexpr ttl_t ttl_never = ttl_t::max();

namespace detail {
inline void check(memshelf_status st) {
    if (st != MEMSHELF_OK && st != MEMSHELF_MISS) {
        throw error(st, std::string(memshelf_strerror(st)) + ": " + memshelf_last_error());
    }
}
inline const uint8_t *bytes(std::string_view s) noexcept {
    return reinterpret_cast<const uint8_t *>(s.data());
}
inline uint64_t ms(ttl_t t) {
    if (t == ttl_never) {
        return MEMSHELF_TTL_NEVER;
    }
    if (t.count() < 0) {
        throw error(MEMSHELF_ERR_INVALID_TTL, "invalid TTL: a TTL must be >= 0 ms");
    }
    return static_cast<uint64_t>(t.count());
}
/// Views of `list`'s strings (which must outlive the result).
template <class Strings> std::vector<memshelf_bytes> byte_list(const Strings &list) {
    std::vector<memshelf_bytes> out;
    for (const auto &item : list) {
        std::string_view s(item);
        out.push_back(memshelf_bytes{bytes(s), s.size()});
    }
    return out;
}
/// A range of strings (std::vector<std::string>, std::array<std::string_view, N>, ...).
template <class T, class = void> struct is_string_range : std::false_type {};
template <class T>
struct is_string_range<T, std::enable_if_t<std::is_convertible_v<
                              decltype(*std::begin(std::declval<const T &>())), std::string_view>>>
    : std::true_type {};
template <class T>
using if_string_range = std::enable_if_t<is_string_range<T>::value &&
                                         !std::is_convertible_v<const T &, std::string_view>>;
} // namespace detail

/// Options of cache::open (see memshelf_options in memshelf.h).
struct options {
    uint64_t capacity = 0;       ///< bytes; 0 = 64 MiB (fixed at creation)
    uint64_t max_value_size = 0; ///< bytes; 0 = 1 MiB (fixed at creation)
    ttl_t default_ttl{0};        ///< 0 = none (fixed at creation)
    double ttl_jitter = 0.0;     ///< 0 to 0.5
    uint32_t mode = 0600;        ///< permission bits of a created segment
    bool create = true;          ///< false: attach only
    std::string path;            ///< empty: POSIX shm; else a file to map
};

/// Options of cache::get_or_set. A plain value: it owns its tag strings, so
/// `opts.tags = {"reports"};` and copies of the options are safe.
struct get_or_set_options {
    ttl_t ttl{0};                          ///< of the stored value
    ttl_t lease = std::chrono::seconds(10); ///< before a waiter takes over
    ttl_t grace{0};                        ///< serve stale this long past the TTL
    ttl_t negative_ttl{0};                 ///< cache "no value" this long
    std::vector<std::string> tags{};       ///< of the stored value
};

/// A handle on a shared segment.
class cache {
public:
    /// Opens (creates or attaches) segment `name`.
    static cache open(const std::string &name, const options &opts = options()) {
        memshelf_options o;
        detail::check(memshelf_options_init(&o));
        o.capacity = opts.capacity;
        o.max_value_size = opts.max_value_size;
        o.default_ttl_ms = opts.default_ttl.count() == 0 ? 0 : detail::ms(opts.default_ttl);
        o.ttl_jitter = opts.ttl_jitter;
        o.mode = opts.mode;
        o.create = opts.create ? 1 : 0;
        o.path = opts.path.empty() ? nullptr : opts.path.c_str();
        memshelf_cache *handle = nullptr;
        detail::check(memshelf_open(name.c_str(), &o, &handle));
        return cache(handle);
    }

    /// Removes segment `name` (attached processes keep their mapping).
    static void unlink(const std::string &name) { detail::check(memshelf_unlink(name.c_str())); }

    cache(cache &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    cache &operator=(cache &&other) noexcept {
        if (this != &other) {
            close();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    cache(const cache &) = delete;
    cache &operator=(const cache &) = delete;
    ~cache() { close(); }

    /// Detaches; later calls throw error(MEMSHELF_ERR_CLOSED). Idempotent.
    void close() noexcept { memshelf_close(std::exchange(handle_, nullptr)); }
    bool is_open() const noexcept { return handle_ != nullptr; }
    /// The C handle, for calls this wrapper does not cover (owned by *this).
    memshelf_cache *native() const noexcept { return handle_; }

    /// The value of `key`, or nullopt.
    std::optional<std::string> get(std::string_view key) const {
        std::string out;
        if (!get(key, out)) {
            return std::nullopt;
        }
        return out;
    }

    /// Reads `key` into `out` (reusing its capacity); returns whether found.
    bool get(std::string_view key, std::string &out) const {
        if (out.capacity() < 64) {
            out.reserve(64);
        }
        out.resize(out.capacity());
        for (;;) {
            size_t len = 0;
            memshelf_status st = memshelf_get(h(), detail::bytes(key), key.size(),
                                              reinterpret_cast<uint8_t *>(out.data()),
                                              out.size(), &len);
            if (st == MEMSHELF_ERR_BUFFER_TOO_SMALL) {
                out.resize(len); // grew meanwhile? the loop asks again
                continue;
            }
            detail::check(st);
            out.resize(len);
            return st == MEMSHELF_OK;
        }
    }

    /// Inserts or replaces `key`, with tags `{"a", "b"}` (or none).
    void put(std::string_view key, std::string_view value, ttl_t ttl = ttl_default,
             std::initializer_list<std::string_view> tags = {}) const {
        put_tags(key, value, ttl, detail::byte_list(tags));
    }
    /// Inserts or replaces `key`, with the tags of a range of strings
    /// (e.g. a std::vector<std::string>).
    template <class Tags, class = detail::if_string_range<Tags>>
    void put(std::string_view key, std::string_view value, ttl_t ttl, const Tags &tags) const {
        put_tags(key, value, ttl, detail::byte_list(tags));
    }

    /// Inserts `key` only if absent; returns whether it did.
    bool add(std::string_view key, std::string_view value, ttl_t ttl = ttl_default,
             std::initializer_list<std::string_view> tags = {}) const {
        return add_tags(key, value, ttl, detail::byte_list(tags));
    }
    /// As above, with the tags of a range of strings.
    template <class Tags, class = detail::if_string_range<Tags>>
    bool add(std::string_view key, std::string_view value, ttl_t ttl, const Tags &tags) const {
        return add_tags(key, value, ttl, detail::byte_list(tags));
    }

    /// Removes `key`; returns whether it was present. (`delete` is a keyword.)
    bool erase(std::string_view key) const {
        bool existed = false;
        detail::check(memshelf_delete(h(), detail::bytes(key), key.size(), &existed));
        return existed;
    }

    /// Atomically adds `delta`; returns the new value.
    int64_t incr(std::string_view key, int64_t delta = 1, ttl_t ttl = ttl_default) const {
        int64_t value = 0;
        detail::check(memshelf_incr(h(), detail::bytes(key), key.size(), delta,
                                    detail::ms(ttl), &value));
        return value;
    }

    /// Remaining lifetime (`ttl_never` for none), or nullopt when absent.
    std::optional<ttl_t> ttl(std::string_view key) const {
        uint64_t ms = 0;
        memshelf_status st = memshelf_ttl(h(), detail::bytes(key), key.size(), &ms);
        detail::check(st);
        if (st == MEMSHELF_MISS) {
            return std::nullopt;
        }
        return ms == MEMSHELF_TTL_NEVER ? ttl_never : ttl_t(static_cast<ttl_t::rep>(ms));
    }

    /// A new TTL for a present key; returns whether it was present.
    bool touch(std::string_view key, ttl_t ttl) const {
        bool found = false;
        detail::check(
            memshelf_touch(h(), detail::bytes(key), key.size(), detail::ms(ttl), &found));
        return found;
    }

    void invalidate_tag(std::string_view tag) const {
        detail::check(memshelf_invalidate_tag(h(), detail::bytes(tag), tag.size()));
    }

    uint64_t delete_prefix(std::string_view prefix) const {
        uint64_t n = 0;
        detail::check(memshelf_delete_prefix(h(), detail::bytes(prefix), prefix.size(), &n));
        return n;
    }

    void clear() const { detail::check(memshelf_clear(h())); }

    memshelf_stats stats() const {
        memshelf_stats s{};
        s.struct_size = sizeof s;
        detail::check(memshelf_get_stats(h(), &s));
        return s;
    }

    /// The live keys with `prefix` (best effort under concurrent writes).
    std::vector<std::string> keys(std::string_view prefix = {}) const {
        memshelf_keys *it = nullptr;
        detail::check(memshelf_keys_open(h(), detail::bytes(prefix), prefix.size(), &it));
        std::vector<std::string> out;
        std::string buf(MEMSHELF_MAX_KEY_LEN, '\0');
        size_t len = 0;
        memshelf_status st;
        while ((st = memshelf_keys_next(it, reinterpret_cast<uint8_t *>(buf.data()), buf.size(),
                                        &len)) == MEMSHELF_OK) {
            out.emplace_back(buf.data(), len);
        }
        memshelf_keys_free(it);
        detail::check(st);
        return out;
    }

    /// Looks up every key of `keys` (a range of strings) in one call: one
    /// optional per key, in order (memshelf_get_many: the batch overlaps the
    /// memory misses of successive lookups).
    template <class Keys, class = detail::if_string_range<Keys>>
    std::vector<std::optional<std::string>> get_many(const Keys &keys) const {
        return get_many_bytes(detail::byte_list(keys));
    }
    std::vector<std::optional<std::string>>
    get_many(std::initializer_list<std::string_view> keys) const {
        return get_many_bytes(detail::byte_list(keys));
    }

    /// Up to `n` of the keys with the most sampled hits, hottest first, with
    /// their (Misra-Gries) counts.
    std::vector<std::pair<std::string, uint64_t>> hot_keys(size_t n = 10) const {
        std::vector<size_t> offsets(n), lens(n);
        std::vector<uint64_t> counts(n);
        std::string buf(n == 0 ? 1 : 256 * n, '\0');
        size_t found = 0, needed = 0;
        for (;;) {
            memshelf_status st = memshelf_hot_keys(
                h(), n, reinterpret_cast<uint8_t *>(buf.data()), buf.size(), offsets.data(),
                lens.data(), counts.data(), &found, &needed);
            if (st == MEMSHELF_ERR_BUFFER_TOO_SMALL) {
                buf.resize(needed);
                continue;
            }
            detail::check(st);
            break;
        }
        std::vector<std::pair<std::string, uint64_t>> out;
        out.reserve(found);
        for (size_t i = 0; i < found; i++) {
            out.emplace_back(buf.substr(offsets[i], lens[i]), counts[i]);
        }
        return out;
    }

    /// Writes every live entry (key, value, remaining TTL, tags) to `path`
    /// (atomically: beside it, then renamed).
    memshelf_dump_report dump(const std::string &path) const {
        memshelf_dump_report r{};
        r.struct_size = sizeof r;
        detail::check(memshelf_dump(h(), path.c_str(), &r));
        return r;
    }
    /// Inserts a dump's entries, never over a live entry; a truncated or
    /// corrupt dump loads its valid prefix (report.complete == 0 says so).
    memshelf_load_report load(const std::string &path) const {
        memshelf_load_report r{};
        r.struct_size = sizeof r;
        detail::check(memshelf_load(h(), path.c_str(), &r));
        return r;
    }

    /// The value of `key`; on a miss exactly one caller across all processes
    /// runs `factory` (returning std::optional<std::string>; nullopt = no
    /// value). An exception from the factory is rethrown here.
    template <class Factory>
    std::optional<std::string> get_or_set(std::string_view key, Factory &&factory,
                                          const get_or_set_options &opts = {}) const {
        memshelf_get_or_set_options o;
        detail::check(memshelf_get_or_set_options_init(&o));
        auto t = detail::byte_list(opts.tags);
        o.ttl_ms = detail::ms(opts.ttl);
        o.lease_ms = detail::ms(opts.lease);
        o.grace_ms = detail::ms(opts.grace);
        o.negative_ttl_ms = detail::ms(opts.negative_ttl);
        o.tags = t.data();
        o.ntags = t.size();
        using F = std::remove_reference_t<Factory>;
        struct context {
            F *factory;
            std::exception_ptr exception;
        } ctx{&factory, nullptr};
        auto trampoline = [](void *c, const uint8_t *, size_t, memshelf_fill *fill) -> int32_t {
            auto *cx = static_cast<context *>(c);
            try {
                std::optional<std::string> v = (*cx->factory)();
                if (v && memshelf_fill_set(fill, detail::bytes(*v), v->size()) != MEMSHELF_OK) {
                    return -2;
                }
                return 0;
            } catch (...) {
                cx->exception = std::current_exception();
                return -1;
            }
        };
        uint8_t *value = nullptr;
        size_t len = 0;
        memshelf_status st = memshelf_get_or_set(h(), detail::bytes(key), key.size(), &o,
                                                 trampoline, &ctx, &value, &len);
        if (ctx.exception) {
            std::rethrow_exception(ctx.exception);
        }
        detail::check(st);
        if (st == MEMSHELF_MISS) {
            return std::nullopt;
        }
        std::string out(reinterpret_cast<const char *>(value), len);
        memshelf_free(value);
        return out;
    }

private:
    explicit cache(memshelf_cache *handle) noexcept : handle_(handle) {}
    void put_tags(std::string_view key, std::string_view value, ttl_t ttl,
                  const std::vector<memshelf_bytes> &t) const {
        detail::check(memshelf_put(h(), detail::bytes(key), key.size(), detail::bytes(value),
                                   value.size(), detail::ms(ttl), t.data(), t.size()));
    }
    bool add_tags(std::string_view key, std::string_view value, ttl_t ttl,
                  const std::vector<memshelf_bytes> &t) const {
        bool inserted = false;
        detail::check(memshelf_add(h(), detail::bytes(key), key.size(), detail::bytes(value),
                                   value.size(), detail::ms(ttl), t.data(), t.size(),
                                   &inserted));
        return inserted;
    }
    std::vector<std::optional<std::string>>
    get_many_bytes(const std::vector<memshelf_bytes> &k) const {
        std::vector<size_t> offsets(k.size()), lens(k.size());
        std::string buf(k.size() * 128 + 1, '\0');
        size_t needed = 0;
        for (;;) {
            memshelf_status st = memshelf_get_many(
                h(), k.data(), k.size(), reinterpret_cast<uint8_t *>(buf.data()), buf.size(),
                offsets.data(), lens.data(), &needed);
            if (st == MEMSHELF_ERR_BUFFER_TOO_SMALL) {
                buf.resize(needed + 1);
                continue;
            }
            detail::check(st);
            break;
        }
        std::vector<std::optional<std::string>> out;
        out.reserve(k.size());
        for (size_t i = 0; i < k.size(); i++) {
            if (lens[i] == MEMSHELF_ABSENT) {
                out.emplace_back(std::nullopt);
            } else {
                out.emplace_back(buf.substr(offsets[i], lens[i]));
            }
        }
        return out;
    }
    const memshelf_cache *h() const {
        if (handle_ == nullptr) {
            throw error(MEMSHELF_ERR_CLOSED, "the cache handle is closed");
        }
        return handle_;
    }
    memshelf_cache *handle_;
};

/// The JSON payload of an invalidation message (see memshelf_message).
inline std::string message_json(const memshelf_message &msg) {
    size_t len = 0;
    memshelf_status st = memshelf_message_build(&msg, nullptr, 0, &len);
    if (st != MEMSHELF_ERR_BUFFER_TOO_SMALL) {
        detail::check(st);
    }
    std::string out(len + 1, '\0');
    detail::check(memshelf_message_build(&msg, out.data(), out.size(), &len));
    out.resize(len);
    return out;
}

} // namespace memshelf

#endif // MEMSHELF_HPP
