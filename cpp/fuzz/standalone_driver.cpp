// A main() for LLVMFuzzerTestOneInput where libFuzzer is not available (gcc).
//
//   fuzz_codec [options] [FILE|DIR ...]
//     Replays every FILE and every file in each DIR (not recursive, sorted) through the target.
//   --mutate N         then runs N mutated inputs, starting from those files and from the valid
//                      payloads of seeds.cpp (bit flips, interesting values, inserts, deletes,
//                      splices, truncations, dictionary tokens, varints)
//   --seed S           seed of the mutation RNG (default 1): a run is reproducible
//   --max-seconds T    stop mutating after T seconds (the replay always completes)
//   --max-len L        longest mutated input (default 65536)
//   --artifacts DIR    where a crashing input is saved as crash-<hash> (default: .)
//   --corpus-out DIR   also save every mutated input that reached new code into DIR
//   --timeout T        an input running longer than T seconds is saved as timeout-<hash> (30)
//   --crash-self-test  abort on a fixed input, to check that crashing inputs are saved
//
// Coverage feedback: when the core and the target are compiled with -fsanitize-coverage=trace-pc
// (CMake does so for this driver), every basic block calls __sanitizer_cov_trace_pc below and
// mutated inputs that reach new edges join the pool of inputs to mutate. Without it the search
// is blind but still works.
//
// Saving a crashing input: before each run the input is written to DIR/.current-input-<pid>.
// If the run dies (a sanitizer report, abort, a trap, a signal) that file is renamed to
// crash-<hash>; if the process is killed outright (OOM killer) the file stays behind. It is removed
// when the driver exits normally.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "seeds.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AVATARKIT_FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define AVATARKIT_FUZZ_ASAN 1
#endif
#ifdef AVATARKIT_FUZZ_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

// ------------------------------------------------------------------------------------------------
// Coverage map (AFL style: hashed edges, hit counts in buckets).

constexpr std::size_t kMapSize = std::size_t{1} << 16;
std::uint8_t g_map[kMapSize];
std::uint8_t g_seen[kMapSize];
std::uint32_t g_prev_block = 0;
bool g_coverage_seen = false;

}  // namespace

// The GNU linker's symbol for the start of the executable: block addresses relative to it are the
// same in every run despite ASLR, which keeps runs with the same --seed reproducible.
extern "C" char __executable_start;

extern "C" void __sanitizer_cov_trace_pc() {
    const auto pc = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)) -
                    reinterpret_cast<std::uintptr_t>(&__executable_start);
    const auto block = static_cast<std::uint32_t>((static_cast<std::uint64_t>(pc) * 0x9E3779B97F4A7C15ull) >> 48);
    std::uint8_t& hits = g_map[(block ^ g_prev_block) & (kMapSize - 1)];
    if (hits != 0xFF) ++hits;
    g_prev_block = block >> 1;
    g_coverage_seen = true;
}

namespace {

std::uint8_t bucket(std::uint8_t hits) {
    if (hits <= 3) return static_cast<std::uint8_t>(1u << (hits - 1));  // 1, 2, 3 -> bits 0..2
    if (hits <= 7) return 8;
    if (hits <= 15) return 16;
    if (hits <= 31) return 32;
    if (hits <= 127) return 64;
    return 128;
}

// Folds the last run's map into g_seen; true when it hit an edge or a count bucket never seen.
bool merge_coverage() {
    bool fresh = false;
    for (std::size_t i = 0; i < kMapSize; ++i) {
        if (g_map[i] == 0) continue;
        const std::uint8_t b = bucket(g_map[i]);
        if ((g_seen[i] & b) == 0) {
            g_seen[i] |= b;
            fresh = true;
        }
        g_map[i] = 0;
    }
    return fresh;
}

std::size_t coverage_features() {
    std::size_t n = 0;
    for (std::uint8_t b : g_seen) n += static_cast<std::size_t>(__builtin_popcount(b));
    return n;
}

// ------------------------------------------------------------------------------------------------
// Saving the input that crashes. Everything reachable from a signal handler is async-signal-safe.

char g_artifacts[PATH_MAX] = ".";
char g_pending[PATH_MAX] = "";  // DIR/.current-input-<pid>
int g_pending_fd = -1;
const std::uint8_t* volatile g_input = nullptr;
volatile std::size_t g_input_size = 0;
const char* volatile g_input_name = nullptr;  // the file being replayed, if any
volatile sig_atomic_t g_saved = 0;
unsigned g_timeout_seconds = 30;

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

void put(const char* s) {
    ssize_t ignored = write(STDERR_FILENO, s, std::strlen(s));
    (void)ignored;
}

// Appends `s` to buf (capacity PATH_MAX) without snprintf, which is not async-signal-safe.
void append(char* buf, const char* s) {
    std::size_t n = std::strlen(buf);
    while (*s && n + 1 < PATH_MAX) buf[n++] = *s++;
    buf[n] = '\0';
}

void save_input(const char* kind) {
    if (g_saved || g_input == nullptr) return;
    g_saved = 1;
    const std::uint8_t* data = g_input;
    const std::size_t size = g_input_size;
    char hex[17];
    std::uint64_t h = fnv1a(data, size);
    for (int i = 15; i >= 0; --i, h >>= 4) hex[i] = "0123456789abcdef"[h & 0xF];
    hex[16] = '\0';
    char path[PATH_MAX] = "";
    append(path, g_artifacts);
    append(path, "/");
    append(path, kind);
    append(path, "-");
    append(path, hex);
    // The pending file already holds the input; write it again only if renaming fails.
    if (g_pending[0] == '\0' || rename(g_pending, path) != 0) {
        const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            ssize_t ignored = write(fd, data, size);
            (void)ignored;
            close(fd);
        }
    }
    put("\nfuzz_codec: input saved to ");
    put(path);
    if (g_input_name != nullptr) {
        put(" (replaying ");
        put(g_input_name);
        put(")");
    }
    put("\n");
}

void on_deadly_signal(int sig) {
    save_input("crash");
    signal(sig, SIG_DFL);
    raise(sig);
}

void on_alarm(int) {
    save_input("timeout");
    put("fuzz_codec: an input ran longer than --timeout\n");
    _exit(70);
}

void install_crash_handlers() {
#ifdef AVATARKIT_FUZZ_ASAN
    // ASan and UBSan report, then call this before they exit; they also own SIGSEGV and SIGBUS.
    __sanitizer_set_death_callback([] { save_input("crash"); });
    const int signals[] = {SIGABRT, SIGILL, SIGFPE};
#else
    const int signals[] = {SIGABRT, SIGILL, SIGFPE, SIGSEGV, SIGBUS};
#endif
    for (int sig : signals) signal(sig, on_deadly_signal);
    signal(SIGALRM, on_alarm);
}

void open_pending_file() {
    std::snprintf(g_pending, sizeof g_pending, "%s/.current-input-%ld", g_artifacts, static_cast<long>(getpid()));
    g_pending_fd = open(g_pending, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (g_pending_fd < 0) {
        std::fprintf(stderr, "fuzz_codec: cannot write %s: %s\n", g_pending, std::strerror(errno));
        std::exit(2);
    }
}

void close_pending_file() {
    close(g_pending_fd);
    unlink(g_pending);
}

// Puts the input on disk and in the globals the crash handlers read, before the target sees it.
void stage(const Bytes& input, const char* name) {
    if (pwrite(g_pending_fd, input.data(), input.size(), 0) != static_cast<ssize_t>(input.size()) ||
        ftruncate(g_pending_fd, static_cast<off_t>(input.size())) != 0) {
        std::fprintf(stderr, "fuzz_codec: cannot write %s: %s\n", g_pending, std::strerror(errno));
        std::exit(2);
    }
    g_input_name = name;
    g_input_size = input.size();
    g_input = input.data();
}

void run_one(const Bytes& input, const char* name) {
    stage(input, name);
    g_prev_block = 0;
    alarm(g_timeout_seconds);
    LLVMFuzzerTestOneInput(input.data(), input.size());
    alarm(0);
    g_input = nullptr;
}

// ------------------------------------------------------------------------------------------------
// Mutations.

// Byte strings the decoders compare against: magic + version + each flags value, the zstd frame
// magic, varints at the edges of their lengths, a channel entry, the FlameAnimation keyframe tag.
const std::vector<Bytes> kDictionary = {
    {'A', 'K', 1, 0},
    {'A', 'K', 1, 1},
    {'A', 'K', 1, 2},
    {'A', 'K', 1, 3},
    {0x28, 0xB5, 0x2F, 0xFD},
    {0x80, 0x01},
    {0xFF, 0x7F},
    {0xE8, 0x07},  // 1000
    {0xE9, 0x07},  // 1001
    {0x80, 0x08},  // 1024
    {0x80, 0x80, 0x01},
    {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10},  // 2^53
    {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
    {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02},
    {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
    {1, 'x', 2, 0, 0, 0, 0, 0, 0, 0x80, 0x3F},  // channel "x", u16, [0, 1]
    {0x0A},
    {0x15},
    {0x3A, 0x90, 0x03},  // expression, packed, 100 floats
};

const std::uint8_t kInteresting8[] = {0, 1, 2, 7, 8, 9, 16, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xFE, 0xFF};
const std::uint16_t kInteresting16[] = {0, 1, 0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF};
// float32 bit patterns: the edges of the finite range, infinities, NaNs, zeros, denormals, +-1.
const std::uint32_t kInteresting32[] = {0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x3F800000,
                                        0xBF800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
                                        0xFFFFFFFF, 0x4B800000, 0x5A800000, 0x7EFFFFFF};
const std::uint64_t kInterestingVarints[] = {0,    1,     2,     7,     8,     11,   127,   128,  255,
                                             256,  999,   1000,  1001,  1023,  1024, 1025,  16383, 16384,
                                             16385, 65535, 1u << 20, 16u << 20, (16u << 20) + 1,
                                             (std::uint64_t{1} << 53) - 1, std::uint64_t{1} << 53, (std::uint64_t{1} << 53) + 1,
                                             std::uint64_t{1} << 63, ~std::uint64_t{0}};

class Mutator {
public:
    explicit Mutator(std::uint64_t seed) : rng_(seed) {}

    std::size_t below(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

    void mutate(Bytes& b, const std::vector<Bytes>& pool, std::size_t max_len) {
        const std::size_t rounds = std::size_t{1} << below(4);  // 1, 2, 4 or 8 stacked mutations
        for (std::size_t i = 0; i < rounds; ++i) mutate_once(b, pool);
        if (b.size() > max_len) b.resize(max_len);
    }

private:
    template <class T, std::size_t N>
    const T& pick(const T (&values)[N]) { return values[below(N)]; }

    void put_le(Bytes& b, std::size_t at, std::uint64_t v, std::size_t width, bool big_endian) {
        for (std::size_t i = 0; i < width && at + i < b.size(); ++i) {
            const std::size_t shift = 8 * (big_endian ? width - 1 - i : i);
            b[at + i] = static_cast<std::uint8_t>((v >> shift) & 0xFFu);
        }
    }

    static Bytes varint(std::uint64_t v) {
        Bytes out;
        while (v >= 0x80u) {
            out.push_back(static_cast<std::uint8_t>((v & 0x7Fu) | 0x80u));
            v >>= 7;
        }
        out.push_back(static_cast<std::uint8_t>(v));
        return out;
    }

    void insert(Bytes& b, const Bytes& what) {
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), what.begin(), what.end());
    }

    void overwrite(Bytes& b, const Bytes& what) {
        if (b.size() < what.size()) {
            insert(b, what);
            return;
        }
        std::copy(what.begin(), what.end(), b.begin() + static_cast<std::ptrdiff_t>(below(b.size() - what.size() + 1)));
    }

    void mutate_once(Bytes& b, const std::vector<Bytes>& pool) {
        if (b.empty()) {
            insert(b, kDictionary[below(kDictionary.size())]);
            return;
        }
        const std::size_t at = below(b.size());
        switch (below(16)) {
            case 0: b[at] = static_cast<std::uint8_t>(b[at] ^ (1u << below(8))); break;
            case 1: b[at] = static_cast<std::uint8_t>(below(256)); break;
            case 2: b[at] = pick(kInteresting8); break;
            case 3: put_le(b, at, pick(kInteresting16), 2, below(2) == 1); break;
            case 4: put_le(b, at, pick(kInteresting32), 4, below(2) == 1); break;
            case 5: {  // small arithmetic on a byte or a little-endian u16
                const auto delta = static_cast<std::uint64_t>(below(16) + 1);
                const bool up = below(2) == 1;
                if (below(2) == 0 || at + 1 >= b.size()) {
                    b[at] = static_cast<std::uint8_t>(up ? b[at] + delta : b[at] - delta);
                } else {
                    std::uint64_t v = b[at] | (static_cast<std::uint64_t>(b[at + 1]) << 8);
                    put_le(b, at, up ? v + delta : v - delta, 2, false);
                }
                break;
            }
            case 6: {  // insert random bytes or a run of one byte
                Bytes what(below(16) + 1);
                const bool run = below(2) == 1;
                const auto fill = static_cast<std::uint8_t>(below(256));
                for (auto& x : what) x = run ? fill : static_cast<std::uint8_t>(below(256));
                insert(b, what);
                break;
            }
            case 7: {  // delete a range
                const std::size_t n = 1 + below(std::min<std::size_t>(b.size() - at, below(2) ? 4 : 256));
                b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
                break;
            }
            case 8: {  // copy a range of the input elsewhere in it
                const std::size_t n = 1 + below(std::min<std::size_t>(b.size() - at, 64));
                const Bytes what(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
                if (below(2)) insert(b, what);
                else overwrite(b, what);
                break;
            }
            case 9: {  // splice: our head, another input's tail
                const Bytes& other = pool[below(pool.size())];
                const std::size_t from = below(other.size() + 1);
                b.resize(at);
                b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
                break;
            }
            case 10: {  // insert a piece of another input
                const Bytes& other = pool[below(pool.size())];
                if (other.empty()) break;
                const std::size_t from = below(other.size());
                const std::size_t n = 1 + below(std::min<std::size_t>(other.size() - from, 256));
                insert(b, Bytes(other.begin() + static_cast<std::ptrdiff_t>(from), other.begin() + static_cast<std::ptrdiff_t>(from + n)));
                break;
            }
            case 11: b.resize(below(b.size())); break;  // truncate
            case 12: {
                const Bytes& token = kDictionary[below(kDictionary.size())];
                if (below(2)) insert(b, token);
                else overwrite(b, token);
                break;
            }
            case 13: {
                const Bytes v = varint(pick(kInterestingVarints));
                if (below(2)) insert(b, v);
                else overwrite(b, v);
                break;
            }
            case 14: {  // swap two bytes
                std::swap(b[at], b[below(b.size())]);
                break;
            }
            default: {  // move a split point of the stream layout (fuzz_format.hpp)
                if (b.size() >= 3) put_le(b, 1 + 2 * below(std::min<std::size_t>((b.size() - 1) / 2, 7)), below(b.size()), 2, false);
                else b[0] = static_cast<std::uint8_t>(below(256));
                break;
            }
        }
    }

    std::mt19937_64 rng_;
};

// ------------------------------------------------------------------------------------------------

bool read_file(const fs::path& path, Bytes& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

void write_file(const fs::path& path, const Bytes& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::string hex_name(const Bytes& b) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, fnv1a(b.data(), b.size()));
    return buf;
}

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s [--mutate N] [--seed S] [--max-seconds T] [--max-len L] [--artifacts DIR]\n"
                 "          [--corpus-out DIR] [--timeout T] [--crash-self-test] [FILE|DIR ...]\n",
                 argv0);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::uint64_t mutations = 0;
    std::uint64_t seed = 1;
    double max_seconds = 0;
    std::size_t max_len = 65536;
    std::string corpus_out;
    bool self_test = false;
    std::vector<fs::path> inputs;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage(argv[0]);
            return argv[++i];
        };
        if (arg == "--mutate") mutations = std::strtoull(value(), nullptr, 10);
        else if (arg == "--seed") seed = std::strtoull(value(), nullptr, 10);
        else if (arg == "--max-seconds") max_seconds = std::strtod(value(), nullptr);
        else if (arg == "--max-len") max_len = std::strtoull(value(), nullptr, 10);
        else if (arg == "--artifacts") std::snprintf(g_artifacts, sizeof g_artifacts, "%s", value());
        else if (arg == "--corpus-out") corpus_out = value();
        else if (arg == "--timeout") g_timeout_seconds = static_cast<unsigned>(std::strtoul(value(), nullptr, 10));
        else if (arg == "--crash-self-test") self_test = true;
        else if (arg == "-h" || arg == "--help") usage(argv[0]);
        else if (arg.rfind("--", 0) == 0) usage(argv[0]);
        else inputs.emplace_back(arg);
    }
    fs::create_directories(g_artifacts);
    if (!corpus_out.empty()) fs::create_directories(corpus_out);
    open_pending_file();
    install_crash_handlers();

    if (self_test) {
        // What a crash inside the target looks like from here: the input must end up in crash-<hash>.
        static const Bytes input = {'s', 'e', 'l', 'f', '-', 't', 'e', 's', 't'};
        stage(input, "--crash-self-test");
        std::abort();
    }

    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

    // Replay.
    std::vector<Bytes> pool;
    std::size_t replayed = 0;
    for (const fs::path& p : inputs) {
        std::vector<fs::path> files;
        if (fs::is_directory(p)) {
            for (const auto& entry : fs::directory_iterator(p)) {
                if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') files.push_back(entry.path());
            }
            std::sort(files.begin(), files.end());
        } else {
            files.push_back(p);
        }
        for (const fs::path& f : files) {
            Bytes data;
            if (!read_file(f, data)) {
                std::fprintf(stderr, "fuzz_codec: cannot read %s\n", f.c_str());
                return 2;
            }
            const std::string name = f.string();
            run_one(data, name.c_str());
            merge_coverage();
            ++replayed;
            pool.push_back(std::move(data));
        }
    }
    std::printf("fuzz_codec: replayed %zu inputs in %.1f s\n", replayed, elapsed());
    std::fflush(stdout);

    // Mutate.
    std::uint64_t done = 0;
    std::size_t added = 0;
    if (mutations > 0) {
        for (auto& s : avatarkit::fuzz::build_seeds()) {
            run_one(s.bytes, nullptr);
            merge_coverage();
            pool.push_back(std::move(s.bytes));
        }
        if (!g_coverage_seen) std::printf("fuzz_codec: no coverage instrumentation: mutating blind\n");
        // A quarter of the time start again from a starting input: inputs that gained coverage soon
        // outnumber them, and the valid payloads are what reaches deep into the decoders.
        const std::size_t initial = pool.size();
        Mutator mutator(seed);
        constexpr std::size_t kMaxPool = 50000;
        double next_report = 10.0;
        Bytes input;
        for (; done < mutations; ++done) {
            if (max_seconds > 0 && (done & 15) == 0 && elapsed() >= max_seconds) break;
            input = pool[mutator.below(mutator.below(4) == 0 ? initial : pool.size())];
            mutator.mutate(input, pool, max_len);
            run_one(input, nullptr);
            if (merge_coverage()) {
                ++added;
                if (!corpus_out.empty()) write_file(fs::path(corpus_out) / hex_name(input), input);
                if (pool.size() < kMaxPool) pool.push_back(input);
                else pool[mutator.below(pool.size())] = input;
            }
            if (elapsed() >= next_report) {
                std::printf("fuzz_codec: #%" PRIu64 " cov: %zu corp: %zu exec/s: %.0f\n", done + 1, coverage_features(),
                            pool.size(), static_cast<double>(done + 1) / elapsed());
                std::fflush(stdout);
                next_report += 10.0;
            }
        }
    }
    close_pending_file();
    const double seconds = elapsed();
    std::printf("fuzz_codec: done: %zu replayed, %" PRIu64 " mutated (%.0f exec/s), %zu new inputs, cov %zu, "
                "%.1f s, 0 crashes\n",
                replayed, done, seconds > 0 ? static_cast<double>(done) / seconds : 0.0, added, coverage_features(), seconds);
    return 0;
}
