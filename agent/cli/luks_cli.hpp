// SPDX-License-Identifier: MIT
// The `enroll` and `rotate` subcommands of crypt-agent.
//
//   crypt-agent enroll [--passphrase-stdin] [--dry-run] [SETTINGS] VOLUME...
//     (without --passphrase-stdin each volume's existing passphrase is asked
//      through the ask-password protocol in ask-dir, Id crypt-agent:enroll:VOLUME)
//   crypt-agent rotate [--dry-run] [SETTINGS] [VOLUME...]
//     (no VOLUME: the enrolled volumes listed in card-crypttab)
// SETTINGS are the settings of every command (agent/config/options.hpp): card-luks1-dir
// (LUKS1 seed store), cache-dir (run locks), card-reader, card-wait, card-pin-*,
// the card profile, ask-dir for the PIN and passphrase questions.
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

#include "agent/log.hpp"
#include "agent/luks/rotation.hpp"

namespace ca::agent {

struct GlobalOptions;  // agent/config/options.hpp

// What enroll and rotate take besides the settings.
struct LuksArgs {
    std::vector<std::string> volumes;
    bool dry_run = false;
    bool passphrase_stdin = false;  // enroll
};

// By default the commands use the smartcard layer (smartcard/blocking.hpp) with
// the configured card settings; a caller (a test) may install another way to reach a card.
using CardOpener =
    std::function<luks::LuksResult<luks::CardAccess>(const std::string& reader, const std::string& profile)>;
void set_card_opener(CardOpener opener);

// Card responses obtained earlier in this boot (the agent's one card operation,
// kept in the boot cache): `finish` rotates with them, no card and no PIN.  Seeds
// missing here still go to the card.
struct RememberedResponses {
    std::map<std::vector<unsigned char>, proto::Secret> responses;  // seed -> response
    std::vector<unsigned char> next_seed;                           // its response is in `responses`
};

// libcryptsetup's messages through the log, "crypt-agent COMMAND: libcryptsetup: ..." (never
// unprefixed on stderr); its debug lines only at log-level debug.  Called once at start.
void route_library_log(Level log_level);

int enroll_main(const LuksArgs& a, const GlobalOptions& o);
int rotate_main(const LuksArgs& a, const GlobalOptions& o, RememberedResponses remembered = {});

}  // namespace ca::agent
