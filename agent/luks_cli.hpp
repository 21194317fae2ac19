// The `enroll` and `rotate` subcommands of crypt-agent.
//
//   crypt-agent enroll [--passphrase-stdin] [--dry-run] [--luks1-store DIR] [card options] VOLUME...
//     (without --passphrase-stdin each volume's existing passphrase is asked
//      through systemd-ask-password, Id crypt-agent:enroll:VOLUME)
//   crypt-agent rotate [--dry-run] [--luks1-store DIR] [--crypttab FILE] [card options] [VOLUME...]
//   card options: --reader SUBSTRING, --card-wait SECONDS, --no-pin
//
// Exit status: 0 every volume done; 1 at least one volume failed (each failed
// volume is left on its old key, the summary says which); 2 usage error or no
// card.  One summary line per volume goes to stderr with a <N> priority prefix
// (the journal's level) or, on a terminal, progress lines and plain summaries.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/luks/rotation.hpp"

namespace ca::agent {

struct GlobalOptions;  // agent/options.hpp: the ask directory for PIN questions

// By default the commands use the smartcard layer (smartcard/blocking.hpp) with
// the default profile; a caller may install another way to reach a card.
using CardOpener = std::function<luks::LuksResult<luks::CardAccess>(const std::string& reader,
                                                                    const std::string& profile)>;
void set_card_opener(CardOpener opener);

int enroll_main(const std::vector<std::string>& args, const GlobalOptions& globals);
int rotate_main(const std::vector<std::string>& args, const GlobalOptions& globals);

// Card responses obtained earlier in this boot (the agent's one card operation,
// kept in the boot cache): `finish` rotates with them, no card and no PIN.  Seeds
// missing here still go to the card.
struct RememberedResponses {
    std::map<std::vector<unsigned char>, proto::Secret> responses;  // seed -> response
    std::vector<unsigned char> next_seed;                           // its response is in `responses`
};
int rotate_main(const std::vector<std::string>& args, const GlobalOptions& globals,
                RememberedResponses remembered);

// The same commands with the card given by the caller (`finish`, tests).
int run_enroll(const std::vector<std::string>& args, luks::CardAccess& card);
int run_rotate(const std::vector<std::string>& args, luks::CardAccess& card,
               const std::vector<unsigned char>& new_seed = {});

}  // namespace ca::agent
