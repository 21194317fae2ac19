// SPDX-License-Identifier: MIT
// The list of candidate sources built into the agent.  Each source decides from
// the configuration whether it is enabled.
#include "agent/sources/card_source.hpp"
#include "agent/sources/source.hpp"

#include <stdexcept>

namespace ca::agent {

SourceList make_sources(boost::asio::io_context& io, const GlobalOptions& o, CandidateSource::Deliver deliver,
                        BootMemo memo) {
    SourceList out;
    CardSourceConfig card = o.card;
    // card-early = auto: in the initramfs, where the root volume's question
    // would otherwise reach the console before the PIN question.
    if (!card.early) card.early = o.phase == Phase::initramfs;
    // Rotation at `finish` uses a next seed challenged in this boot's card operation.
    card.challenge_next = card.challenge_next && o.rotate_on_finish != GlobalOptions::Rotate::no;
    if (card.enabled()) {
        if (auto src = make_card_source(io, card, o.ask_dir, deliver, std::move(memo))) out.push_back(std::move(src));
    }
    return out;
}

}  // namespace ca::agent
