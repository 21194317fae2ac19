// The list of candidate sources built into the agent.  Each source decides from
// the configuration whether it is enabled.
#include "agent/source.hpp"

namespace ca::agent {

SourceList make_sources(boost::asio::io_context& /*io*/, const GlobalOptions& /*o*/,
                        CandidateSource::Deliver /*deliver*/) {
    SourceList out;
    return out;
}

}  // namespace ca::agent
