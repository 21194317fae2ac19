// SPDX-License-Identifier: MIT
// A source of candidates beyond the cache (a smartcard, a LUKS token's seed).
//
// The server asks a source for a question's Id when the cache has no untried
// candidate for it.  The source answers later, on the loop's thread, through
// `deliver` (possibly never: a card that is not inserted yet keeps the question
// open for other agents too).  Candidates delivered for an Id join the cache,
// restricted to that Id, and every question waiting for it is re-evaluated.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "agent/config/options.hpp"
#include "proto/cache_codec.hpp"
#include "proto/secret.hpp"

namespace ca::agent {

class CandidateSource {
public:
    using Deliver = std::function<void(const std::string& id, std::vector<proto::Secret> candidates)>;
    virtual ~CandidateSource() = default;
    [[nodiscard]] virtual const char* name() const noexcept = 0;
    // Whether this source may produce candidates for this Id at all.
    [[nodiscard]] virtual bool handles(const std::string& id) const = 0;
    // Starts producing candidates for `id`; repeated calls for an Id already in
    // progress must be cheap (one card operation serves every volume).
    virtual void request(const std::string& id) = 0;
    // Work to do before the agent tells systemd it is ready (Type=notify), so
    // that units ordered after it (systemd-cryptsetup, through
    // cryptsetup-pre.target) ask only once it is done: the card's PIN question
    // must reach the console before any disk's.  Returns false when there is
    // none; otherwise calls `done` once, on the loop, when finished or given up.
    virtual bool prefetch(std::function<void()> done) {
        (void)done;
        return false;
    }
    // Stops background work (threads, card sessions) for shutdown.
    virtual void stop() = 0;
};

// What a source keeps in the boot-scoped cache besides answers: a card's responses, in the
// cache's own card section (proto::CardResponse), never offered to a question.  They travel
// with the cache to the real root and are flushed by `finish` with everything else.
struct BootMemo {
    std::function<void(proto::CardResponse::Kind kind, const std::vector<unsigned char>& seed,
                       const proto::Secret& response)>
        put;
    // The response to this seed (kind current), if an earlier phase kept it.
    std::function<std::optional<proto::Secret>(const std::vector<unsigned char>& seed)> response;
    // Whether a response to a fresh seed for the rotation at `finish` is kept already.
    std::function<bool()> has_next;
};

// Builds the sources the configuration asks for (none by default).  Start-up
// errors throw std::runtime_error with a message for the administrator.
using SourceList = std::vector<std::unique_ptr<CandidateSource>>;
[[nodiscard]] SourceList make_sources(boost::asio::io_context& io, const GlobalOptions& o,
                                      CandidateSource::Deliver deliver, BootMemo memo = {});

}  // namespace ca::agent
