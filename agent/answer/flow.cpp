// SPDX-License-Identifier: MIT
#include "agent/answer/flow.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/answer/describe.hpp"
#include "agent/answer/policy.hpp"
#include "agent/askdir/files.hpp"
#include "agent/clock.hpp"
#include "agent/log.hpp"
#include "proto/glob.hpp"

namespace ca::agent {

namespace {

// A killed instance's newest record may be of a reply it never sent: how long its question must
// still be there, with nothing waiting on its socket, before it is answered.  An asker that got
// its reply removes its question at once (systemd-ask-password does, right after the read).
constexpr auto kUncertainGrace = std::chrono::seconds(1);

}  // namespace

Answerer::Answerer(boost::asio::io_context& io, const GlobalOptions& o, uid_t owner, Watcher& dir, BootCache& cache,
                   SystemdEntry& entry, SourceList& sources)
    : io_(io),
      o_(o),
      owner_(owner),
      dir_(dir),
      cache_(cache),
      entry_(entry),
      sources_(sources),
      deadlines_(
          io,
          [this](const std::string& name, Watchdog::Ticket t) {
              const auto* q = questions_.find(name);
              return q != nullptr && q->watch == t;
          },
          [this](const std::string& name) { on_deadline(name); }) {}

void Answerer::open() {
    auto s = make_sender();
    if (!s) throw std::runtime_error(std::string("cannot create the reply socket: ") + std::strerror(s.error()));
    sender_ = std::move(*s);
    // A storm's replies wait in this socket until each asker reads its own; 4 MiB holds
    // thousands of them, where the default's EAGAIN sends each into its own back-off.
    if (const int e = widen_send_buffer(sender_.get(), 4 << 20); e != 0)
        CA_LOG(warning) << "cannot enlarge the reply socket's send buffer (" << std::strerror(e)
                        << "); a storm of questions will be answered more slowly, ignoring";
    if (auto w = answered_.open(o_.cache_dir); !w.empty())
        CA_LOG(warning) << "cannot record which questions were answered (" << w
                        << "); a restart of the agent may answer a pending question twice";
    else if (answered_.inherited_count() != 0)
        CA_LOG(debug) << answered_.inherited_count() << " record(s) of answered questions from an earlier instance in "
                      << answered_.path() << " (those of questions still asked are kept)";
}

void Answerer::stop() {
    stopping_ = true;
    answered_.confirm();
    deadlines_.stop();
}

// ---- the watcher's batches ---------------------------------------------------------------

void Answerer::on_wake(const DirWake& wake) {
    struct EndOfBatch {
        bool& flag;
        ~EndOfBatch() { flag = false; }  // a question considered later (a timer) reads it afresh
    } end_of_batch{harvested_in_batch_};
    if (wake.touched) on_touched();
    if (wake.full) {
        on_listing(wake);
        return;
    }
    // A name that goes later in this batch is not read (it would only fail with ENOENT).
    // A live storm's batches hold a few names (looked through); a burst, a map.
    const auto& names = wake.names;
    std::unordered_map<std::string_view, std::size_t> last_gone;
    constexpr std::size_t kLinear = 16;
    if (names.size() > kLinear)
        for (std::size_t i = 0; i < names.size(); ++i)
            if (!names[i].second) last_gone[names[i].first] = i;
    const auto goes_later = [&](std::size_t i) {
        if (names.size() <= kLinear) {
            for (std::size_t j = i + 1; j < names.size(); ++j)
                if (!names[j].second && names[j].first == names[i].first) return true;
            return false;
        }
        const auto gone = last_gone.find(names[i].first);
        return gone != last_gone.end() && gone->second > i;
    };
    bool someone_answered = false;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const auto& [nm, appeared] = names[i];
        if (appeared) {
            if (!goes_later(i)) process_name(nm, 0);
            continue;
        }
        someone_answered = forget(nm) == State::waiting || someone_answered;
    }
    if (someone_answered) {
        // A question we could not answer is gone: a person (through another agent) probably
        // answered it, and systemd-cryptsetup has just pushed that answer into its keyring entry.
        entry_.harvest();
        revisit_waiting();
    }
}

void Answerer::on_touched() {
    // systemd touches the directory after pushing an answer into its keyring entry (and
    // `finish`, `cache put` and `cache flush` touch it too).
    cache_.load();
    entry_.harvest();
    entry_.push();
    revisit_waiting();
}

void Answerer::on_listing(const DirWake& wake) {
    // One pass: what went, then every name present, in directory order.
    std::vector<std::string> present;
    std::vector<std::pair<std::string, ino_t>> found;
    present.reserve(wake.entries.size());
    found.reserve(wake.entries.size());
    for (const auto& e : wake.entries) {
        present.push_back(e.name);
        found.emplace_back(e.name, e.ino);
    }
    std::sort(present.begin(), present.end());
    for (const auto& name : questions_.names_absent_from(present)) forget(name);
    answered_.keep_only(static_cast<std::uint64_t>(dir_.dir_stat().st_dev),
                        found);  // bounded: records of gone questions go
    const auto skipped_before = questions_.stats().skipped;
    for (const auto& e : wake.entries) process_name(e.name, e.ino);
    if (questions_.stats().skipped != skipped_before)
        CA_LOG(notice) << (questions_.stats().skipped - skipped_before)
                       << " pending question(s) had already been answered "
                       << "(before a restart, or before the directory was replaced); not answering them again";
}

// ---- one question -------------------------------------------------------------------------

void Answerer::process_name(const std::string& name, ino_t hint_ino) {
    const int dirfd = dir_.dir_fd();
    if (auto* known = questions_.find(name)) {
        struct stat st {};
        if (hint_ino == 0 || known->left_alone()) {
            if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return;
            hint_ino = st.st_ino;
        }
        // Seen already, unless a file we could not use has been written to since.
        const bool rewritten = known->left_alone() &&
                               (st.st_size != known->size || st.st_mtim.tv_nsec != known->mtime_ns ||
                                st.st_mtim.tv_sec != known->mtime_s);
        if (known->ino == hint_ino && !rewritten && known->state != State::retry) return;
        forget(name);  // same name, new or rewritten file
    }
    auto file = read_ask_file(dirfd, name.c_str(), owner_);
    auto q = std::make_shared<TrackedAsk>();
    q->name = name;
    if (!file) {
        const auto& e = file.error();
        if (e.kind == AskFileError::vanished) return;
        if (e.kind == AskFileError::no_fds) {
            // Out of file descriptors (a low RLIMIT_NOFILE, or another process holding
            // them): nothing is wrong with the question.  Leave it unrecorded and rescan soon.
            if (dir_.fd_pressure().first())
                CA_LOG(warning) << escaped(name) << ": " << e.reason
                                << "; will retry (raise LimitNOFILE= if this persists)";
            dir_.rescan_later();
            return;
        }
        struct stat st {};
        if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            q->ino = st.st_ino;
            q->size = st.st_size;
            q->mtime_s = st.st_mtim.tv_sec;
            q->mtime_ns = st.st_mtim.tv_nsec;
        }
        auto& ref = questions_.add(std::move(q));
        questions_.transition(ref, State::ignored);
        CA_LOG(warning) << escaped(name) << ": " << e.reason << ", ignoring";
        return;
    }
    q->ino = file->ino;
    q->ask = std::move(file->q);
    q->id = q->ask.id.value_or(std::string());
    q->key = ask_identity(dir_.dir_stat().st_dev, name, file->ino, file->ctime);
    q->keyed = true;
    auto& ref = questions_.add(std::move(q));
    if (answered_before(ref)) return;
    consider(ref);
}

void Answerer::consider(TrackedAsk& q) {
    // Our own questions (a card's PIN, a passphrase for enrolment) are for a person: a cached
    // passphrase sent as a PIN would burn one of the card's tries.  Never, whatever --match says.
    if (q.id.rfind("crypt-agent:", 0) == 0) {
        questions_.transition(q, State::ignored);
        CA_LOG(debug) << describe(q.name, q.id) << ": the agent's own question, for a person";
        return;
    }
    if (std::none_of(o_.match.begin(), o_.match.end(),
                     [&](const std::string& p) { return proto::glob_match(p, q.id); })) {
        questions_.transition(q, State::ignored);
        CA_LOG(info) << describe(q.name, q.id) << ": Id not configured to be answered, leaving it to other agents";
        return;
    }
    if (q.ask.has_deadline() && monotonic_us() >= q.ask.not_after_us) {
        questions_.transition(q, State::ignored);
        CA_LOG(info) << describe(q.name, q.id) << ": its deadline (NotAfter) has passed, ignoring";
        return;
    }
    // The PID is looked at here only for a retry (what it teaches is only true of a live
    // asker); a question about to be answered finds out from the send (ECONNREFUSED), and
    // one left waiting is looked at in answer_or_wait.
    if (!q.ask.accept_cached && asker_gone(q)) return;
    CA_LOG(debug) << describe(q.name, q.id) << ": new question from PID " << q.ask.pid
                  << (q.ask.accept_cached ? "" : " (AcceptCached=0)");
    if (const auto n = ledger_.prune(); n != 0)
        CA_LOG(info) << "forgot the " << n << " least recently asking Ids (more than " << Ledger::kHigh << ")";
    auto& ids = ledger_.of(q.id);
    // Harvest before learning, so a passphrase just typed for another volume is known.  A
    // retry always looks.
    const auto now = boottime_us();
    entry_.harvest_now_or_soon(!q.ask.accept_cached && !harvested_in_batch_, now);
    if (!q.ask.accept_cached) harvested_in_batch_ = true;
    if (!q.ask.accept_cached) learn_from_retry(q, ids);
    ids.seen = true;
    ids.last_ask_us = now;
    answer_or_wait(q);
    if (q.state == State::waiting) arm_deadline(q);
}

bool Answerer::asker_gone(TrackedAsk& q) {
    if (pid_alive(q.ask.pid)) return false;
    questions_.transition(q, State::gone);
    CA_LOG(info) << describe(q.name, q.id) << ": asker PID " << q.ask.pid << " is gone, ignoring";
    return true;
}

bool Answerer::answered_before(TrackedAsk& q) {
    const auto* e = answered_.find(q.key);
    if (e == nullptr) return false;
    if (e->uncertain) {
        hold_uncertain(q);
        return true;
    }
    // Not learnt from again either: an AcceptCached=0 question was learnt from when answered.
    questions_.transition(q, State::skipped);
    CA_LOG(notice) << describe(q.name, q.id) << ": already answered "
                   << (e->inherited ? "by the agent that ran before this one" : "by this agent")
                   << "; not answering it twice";
    return true;
}

void Answerer::hold_uncertain(TrackedAsk& q) {
    // The newest record of an instance that was killed: written before a send it may not have made.
    const auto* e = answered_.find(q.key);
    if (e == nullptr) {
        questions_.transition(q, State::waiting);
        consider(q);
        return;
    }
    const auto queued = socket_queue(e->sock);
    if (queued && *queued != 0) {
        answered_.settle(q.key);
        questions_.transition(q, State::skipped);
        CA_LOG(notice) << describe(q.name, q.id) << ": the agent before this one was stopped while answering it; "
                       << "a reply waits on its socket, not answering it twice";
        return;
    }
    if (q.state != State::held) {
        questions_.transition(q, State::held);
        CA_LOG(notice) << describe(q.name, q.id) << ": the agent before this one was stopped while answering it and "
                       << (queued ? "no reply waits on its socket"
                                  : "the kernel cannot tell whether a reply waits on its socket")
                       << "; answering it in " << kUncertainGrace.count() << " s unless it goes away";
        q.watch = deadlines_.arm(q.name, std::chrono::steady_clock::now() + kUncertainGrace);  // on_deadline
        return;
    }
    // Still asked a second later with nothing waiting: the reply was never sent.
    CA_LOG(notice) << describe(q.name, q.id) << ": still asked and no reply waits on its socket; answering it now";
    questions_.transition(q, State::waiting);
    consider(q);  // its send overwrites the uncertain record
}

void Answerer::learn_from_retry(TrackedAsk& q, IdState& ids) {
    // AcceptCached=0 from systemd-cryptsetup means: what this volume was given last failed.
    const auto learnt = agent::learn_from_retry(ids, cache_.payload(), cache_.hashes(), entry_.history(),
                                                {o_.harvest, o_.push_systemd});
    if (learnt.excused != 0)
        CA_LOG(notice) << describe(q.name, q.id) << ": asked again, but its asker took systemd's keyring entry "
                       << "(another volume's passphrase) instead of our answer; offering " << learnt.excused
                       << " candidate(s) once more";
    if (learnt.rejected != 0) {
        CA_LOG(notice) << describe(q.name, q.id) << ": asked again after a failed attempt; " << learnt.rejected
                       << " candidate(s) will not be offered to it again";
        cache_.changed();
    }
}

void Answerer::answer_or_wait(TrackedAsk& q) {
    if (q.state != State::waiting || dir_.unsafe()) return;
    cache_.forget_if_finished();
    auto& ids = ledger_.of(q.id);
    std::vector<std::size_t> eligible;
    if (const auto* cache = cache_.payload()) eligible = eligible_ranked(*cache, cache_.hashes(), ids, q.sent, q.id);
    if (eligible.empty()) {
        if (asker_gone(q)) return;  // nothing to send, so the send cannot tell us
        // Once per Id: if what a source delivered was rejected, asking again would loop.
        if (!ids.asked_sources) {
            ids.asked_sources = true;
            for (auto& s : sources_) {
                if (s->handles(q.id)) {
                    CA_LOG(debug) << describe(q.name, q.id) << ": asking the " << s->name() << " source";
                    s->request(q.id);
                }
            }
        }
        if (q.told_waiting.first())
            CA_LOG(info) << describe(q.name, q.id) << ": no untried candidate for it"
                         << (cache_.present() ? "" : " (nothing cached)") << "; leaving it to other agents for now";
        return;
    }
    send_to(q, std::move(eligible));
}

void Answerer::arm_deadline(TrackedAsk& q) {
    q.watch = q.ask.has_deadline() ? deadlines_.arm(q.name, deadline_of(q.ask.not_after_us)) : 0;
}

void Answerer::on_deadline(const std::string& name) {
    auto* q = questions_.find(name);
    if (q == nullptr || stopping_) return;
    q->watch = 0;
    // Its state says which deadline it was: the grace second of a held question, or the NotAfter
    // of one still waiting (one being sent to checks its NotAfter before each try).
    switch (q->state) {
    case State::held: hold_uncertain(*q); return;
    case State::waiting:
        questions_.transition(*q, State::ignored);
        CA_LOG(info) << describe(name, q->id) << ": deadline reached without an answer from us";
        return;
    case State::sending:
    case State::answered:
    case State::skipped:
    case State::ignored:
    case State::gone:
    case State::retry: return;
    }
}

auto Answerer::forget(const std::string& name) -> std::optional<State> {
    auto q = questions_.remove(name);
    if (!q) return std::nullopt;
    // The asker deleted its file.  If we answered with exactly one candidate and the same Id
    // does not come back with AcceptCached=0, that candidate worked: prefer it elsewhere.
    if (q->state == State::answered && q->sent.size() == 1) {
        if (auto idx = cache_.index_of(q->sent.front())) {
            auto& c = cache_.payload()->candidates[*idx];
            if (!c.opened) {
                c.opened = true;
                cache_.changed();
            }
        }
    }
    if (q->keyed) answered_.release(q->key);  // its file is gone: its record's slot is free
    return q->state;
}

void Answerer::revisit_waiting() {
    // A dead asker is found by the send, or by answer_or_wait when there is nothing to send.
    for (auto* q : questions_.in_state(State::waiting)) answer_or_wait(*q);
}

}  // namespace ca::agent
