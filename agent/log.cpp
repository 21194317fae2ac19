#include "agent/log.hpp"

#include <atomic>
#include <boost/core/null_deleter.hpp>
#include <boost/log/attributes/value_extraction.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <sys/stat.h>
#include <unistd.h>

namespace ca::agent {

namespace {
std::atomic<int> g_min_level{static_cast<int>(Level::info)};
bool g_initialised = false;
std::string g_command;  // set once at start, before any thread logs
}  // namespace

bool stderr_is_journal() noexcept {
    // systemd's rule (sd_journal_stream_fd, systemd.exec(5)): compare device and inode.
    const char* js = std::getenv("JOURNAL_STREAM");
    if (js == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st{};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void set_log_command(std::string_view command) { g_command = std::string(command); }

std::string line_prefix(Level l) {
    static const bool journal = stderr_is_journal();
    if (journal) return "<" + std::to_string(static_cast<int>(l)) + ">";
    return g_command.empty() ? std::string("crypt-agent: ") : "crypt-agent " + g_command + ": ";
}

std::optional<Level> parse_level(std::string_view s) noexcept {
    if (s == "debug") return Level::debug;
    if (s == "info") return Level::info;
    if (s == "notice") return Level::notice;
    if (s == "warning" || s == "warn") return Level::warning;
    if (s == "err" || s == "error") return Level::err;
    if (s == "crit") return Level::crit;
    return std::nullopt;
}

const char* to_string(Level l) noexcept {
    switch (l) {
        case Level::crit: return "crit";
        case Level::err: return "err";
        case Level::warning: return "warning";
        case Level::notice: return "notice";
        case Level::info: return "info";
        case Level::debug: return "debug";
    }
    return "?";
}

boost::log::sources::severity_logger_mt<Level>& logger() {
    static boost::log::sources::severity_logger_mt<Level> lg;
    return lg;
}

bool log_enabled(Level l) noexcept { return static_cast<int>(l) <= g_min_level.load(std::memory_order_relaxed); }

void set_log_level(Level min_level) { g_min_level.store(static_cast<int>(min_level)); }

void init_logging(Level min_level) {
    set_log_level(min_level);
    if (g_initialised) return;
    g_initialised = true;
    namespace logging = boost::log;
    namespace sinks = boost::log::sinks;
    auto backend = boost::make_shared<sinks::text_ostream_backend>();
    backend->add_stream(boost::shared_ptr<std::ostream>(&std::clog, boost::null_deleter()));
    backend->auto_flush(true);
    auto sink = boost::make_shared<sinks::synchronous_sink<sinks::text_ostream_backend>>(backend);
    sink->set_formatter([](const logging::record_view& rec, logging::formatting_ostream& out) {
        auto sev = logging::extract<Level>("Severity", rec);
        out << line_prefix(sev ? *sev : Level::info) << rec[logging::expressions::smessage];
    });
    sink->set_filter([](const logging::attribute_value_set& attrs) {
        auto sev = logging::extract<Level>("Severity", attrs);
        return sev && log_enabled(*sev);
    });
    logging::core::get()->add_sink(sink);
}

}  // namespace ca::agent
