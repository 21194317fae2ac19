// SPDX-License-Identifier: MIT
// parse-bench: nanoseconds per ask file for ca::proto::parse_ask_file, on
// files shaped as real askers write them.  Pure CPU: no I/O in the loop.
//
// Each case is parsed in batches over a pool of distinct files (so the branch
// predictor cannot learn one file); the figure is the median over repetitions
// of (batch time / files), which is robust against a noisy, shared machine.
// A file that fails to parse makes the run fail: a fast wrong parser is no use.
#include "proto/ask_file.hpp"
#include "proto/reply.hpp"
#include "proto/secret.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Case {
    const char* name;
    std::vector<std::string> files;
};

// Exactly what systemd 252's ask_password_agent() writes for cryptsetup.
std::string systemd252(unsigned i) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "[Ask]\nPID=%u\nSocket=/run/systemd/ask-password/sck.%016x\nAcceptCached=1\nEcho=0\n"
                  "NotAfter=%llu\nSilent=0\nMessage=Please enter passphrase for disk data%u (luks-%08x):\n"
                  "Icon=drive-harddisk\nId=cryptsetup:/dev/disk/by-uuid/%08x-0000-4000-8000-000000000000\n",
                  1000 + i, i * 2654435761u, 123456789ULL + i, i, i * 40503u, i);
    return buf;
}

// systemd-ask-password without Icon/Id, the shortest real file.
std::string minimal(unsigned i) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "[Ask]\nPID=%u\nSocket=/run/systemd/ask-password/sck.%016x\nAcceptCached=0\nEcho=0\n"
                  "NotAfter=0\nSilent=0\nMessage=Password:\n",
                  1000 + i, i * 2654435761u);
    return buf;
}

// A long Message with escapes (cescape of non-ASCII and quotes), and keys a
// newer systemd adds that an agent must skip.
std::string long_escaped(unsigned i) {
    std::string msg;
    for (int k = 0; k < 20; ++k)
        msg += "Passphrase f\\xc3\\xbcr \\\"Datentr\\xc3\\xa4ger\\\" #" + std::to_string(i) + "\\n";
    char head[256];
    std::snprintf(head, sizeof head,
                  "[Ask]\nPID=%u\nSocket=/run/systemd/ask-password/sck.%016x\nAcceptCached=1\nEcho=0\n"
                  "NotAfter=%llu\nSilent=0\n",
                  1000 + i, i * 2654435761u, 987654321ULL + i);
    return std::string(head) + "Message=" + msg + "\nIcon=drive-harddisk\nId=cryptsetup:/dev/vd" +
           static_cast<char>('a' + i % 26) + "\nKeyringMode=shared\nCredential=foo.bar\n";
}

template <class Make>
Case make_case(const char* name, Make make, unsigned pool) {
    Case c{name, {}};
    for (unsigned i = 0; i < pool; ++i) c.files.push_back(make(i));
    return c;
}

volatile std::size_t g_sink;  // keeps the optimiser from dropping the parses

// Returns ns per file for one batch, or -1 if any file failed to parse.
double batch_ns(const Case& c, unsigned rounds) {
    std::size_t sink = 0;
    const auto t0 = Clock::now();
    for (unsigned r = 0; r < rounds; ++r) {
        for (const auto& f : c.files) {
            auto q = ca::proto::parse_ask_file(f);
            if (!q) return -1;
            sink += q->socket.size();
        }
    }
    const auto t1 = Clock::now();
    g_sink = sink;
    const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    return ns / (static_cast<double>(rounds) * static_cast<double>(c.files.size()));
}

// For scale beside the parser: encoding one reply with proto::encode_reply,
// which gives every reply its own locked pages (mmap, madvise x2, mlock, and
// munlock, munmap when freed), against copying into one reused buffer.
void reply_cost(unsigned reps) {
    const auto pw = ca::proto::Secret::copy_of(std::string_view("correct horse battery staple"));
    const ca::proto::Secret* one[] = {&pw};
    const auto time_ns = [&](auto&& body) {
        std::vector<double> t;
        for (unsigned r = 0; r < reps; ++r) {
            const auto t0 = Clock::now();
            for (int i = 0; i < 2000; ++i) body();
            const auto t1 = Clock::now();
            t.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) /
                        2000.0);
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    };
    std::size_t sink = 0;
    const double encode = time_ns([&] {
        auto r = ca::proto::encode_reply(one);
        sink += r ? r->size() : 0;
    });
    unsigned char reused[ca::proto::kReplyMaxSize];
    const double copy = time_ns([&] {
        reused[0] = '+';
        std::copy(pw.data(), pw.data() + pw.size(), reused + 1);
        sink += reused[pw.size()];
    });
    g_sink = sink;
    ca::proto::wipe(reused, sizeof reused);
    std::printf("%-32s %8s %10.1f\n%-32s %8s %10.1f\n", "reply: encode_reply (own pages)", "-", encode,
                "reply: copy into a reused buffer", "-", copy);
    std::printf("parse-bench-result case=encode_reply ns=%.1f\nparse-bench-result case=reused_buffer ns=%.1f\n", encode,
                copy);
}

}  // namespace

int main(int argc, char** argv) {
    const unsigned reps = argc > 1 ? static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10)) : 15;
    const unsigned rounds = argc > 2 ? static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)) : 20;
    const unsigned pool = 1000;
    const std::vector<Case> cases = {make_case("systemd-252-cryptsetup", systemd252, pool),
                                     make_case("systemd-ask-password-minimal", minimal, pool),
                                     make_case("long-escaped-message+new-keys", long_escaped, pool)};
    std::printf("%-32s %8s %10s %10s %10s\n", "case", "bytes", "ns/file", "min_ns", "MB/s");
    bool ok = true;
    for (const auto& c : cases) {
        std::size_t bytes = 0;
        for (const auto& f : c.files) bytes += f.size();
        const double avg_bytes = static_cast<double>(bytes) / static_cast<double>(c.files.size());
        (void)batch_ns(c, 2);  // warm caches and the allocator
        std::vector<double> t;
        for (unsigned r = 0; r < reps; ++r) t.push_back(batch_ns(c, rounds));
        if (std::any_of(t.begin(), t.end(), [](double x) { return x < 0; })) {
            std::printf("%-32s a file failed to parse\n", c.name);
            ok = false;
            continue;
        }
        std::sort(t.begin(), t.end());
        const double med = t[t.size() / 2];
        std::printf("%-32s %8.0f %10.1f %10.1f %10.1f\n", c.name, avg_bytes, med, t.front(), avg_bytes / med * 1e3);
        std::printf("parse-bench-result case=%s bytes=%.0f ns_per_file=%.1f min_ns=%.1f\n", c.name, avg_bytes, med,
                    t.front());
    }
    reply_cost(reps);
    return ok ? 0 : 1;
}
