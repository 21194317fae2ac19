// SPDX-License-Identifier: MIT

#include "agent/sources/card_source.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/log.hpp"
#include "agent/sources/boot_volumes.hpp"
#include "agent/sources/pin_asker.hpp"
#include "smartcard/derive.hpp"
#include "smartcard/service.hpp"

namespace ca::agent {
namespace {

namespace sc = ca::smartcard;

class CardSource final : public CandidateSource {
public:
    CardSource(boost::asio::io_context& io, const CardSourceConfig& config, const std::filesystem::path& ask_dir,
               SeedLookup lookup, Deliver deliver, BootMemo memo)
        : asker_(io, PinAskerOptions{ask_dir, config.pin_timeout, 0}),
          early_timer_(io),
          early_(config.early.value_or(false)),
          early_wait_(config.early_wait),
          luks_tokens_(config.luks_tokens),
          crypttab_(config.crypttab),
          challenge_next_(config.challenge_next),
          lookup_(std::move(lookup)),
          deliver_(std::move(deliver)),
          memo_(std::move(memo)),
          card_options_(config.card),
          service_(sc::CardService::create(io.get_executor(), config.card, &asker_, &CardSource::log_notice)) {
        for (const auto& [id, uuid] : config.volumes) configured_.push_back(id);
    }

    ~CardSource() override { stop(); }

    [[nodiscard]] const char* name() const noexcept override { return "smartcard"; }

    [[nodiscard]] bool handles(const std::string& id) const override { return find(id).has_value(); }

    void request(const std::string& id) override {
        std::vector<std::string> ids{id};
        // One challenge per seed serves every configured volume: derive them all
        // now, so the cache handed to the real root holds every key.
        if (!all_requested_ && std::find(configured_.begin(), configured_.end(), id) != configured_.end()) {
            all_requested_ = true;
            ids.insert(ids.end(), configured_.begin(), configured_.end());
        }
        start_jobs(ids);
    }

    bool prefetch(std::function<void()> done) override {
        if (!early_ || stopped_) return false;
        early_ids_ = configured_;
        if (luks_tokens_)
            for (auto& id : boot_volume_ids("/proc/cmdline", crypttab_))
                if (std::find(early_ids_.begin(), early_ids_.end(), id) == early_ids_.end()) early_ids_.push_back(id);
        if (early_ids_.empty()) return false;
        CA_LOG(notice) << "card-early: asking the smartcard for " << early_ids_.size()
                       << " volume(s) before systemd-cryptsetup asks; waiting up to "
                       << std::chrono::duration<double>(early_wait_).count() << " s for a card and its PIN";
        early_done_ = std::move(done);
        early_deadline_ = std::chrono::steady_clock::now() + early_wait_;
        poll_early();
        return true;
    }

    void stop() override {
        if (stopped_) return;
        stopped_ = true;
        early_timer_.cancel();
        early_done_ = nullptr;
        service_->stop();
        asker_.cancel();
    }

private:
    struct Job {
        std::string id;
        VolumeSeedSet set;
        std::vector<std::optional<proto::Secret>> got;  // derived passphrases
        std::size_t outstanding = 0;
        std::optional<sc::Error> first_error;
    };

    // Until the devices the initramfs will unlock have appeared (their seeds are in
    // their headers), look again every 200 ms; then one card operation for all.
    // A device still missing 3 s after the first one was found is left out.
    void poll_early() {
        const auto now = std::chrono::steady_clock::now();
        std::vector<std::string> known;
        for (const auto& id : early_ids_)
            if (auto set = find_now(id); set && !set->seeds.empty()) known.push_back(id);
        if (!known.empty() && !first_known_) first_known_ = now;
        const bool all = known.size() == early_ids_.size();
        if (all || (first_known_ && now - *first_known_ >= std::chrono::seconds(3)) || now >= early_deadline_) {
            if (!all)
                for (const auto& id : early_ids_)
                    if (std::find(known.begin(), known.end(), id) == known.end())
                        CA_LOG(notice) << "card-early: no seed for '" << escaped(id)
                                       << "' yet (device absent or not enrolled); "
                                       << "it asks the card when its question comes";
            start_jobs(known);
            arm_early_release();
            return;
        }
        early_timer_.expires_after(std::chrono::milliseconds(200));
        early_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
            if (!ec && alive.lock() && early_done_) poll_early();
        });
    }

    void arm_early_release() {
        if (!busy()) {  // nothing to wait for: release on the loop, not inside start()
            boost::asio::post(early_timer_.get_executor(), [this, alive = std::weak_ptr<int>(alive_)] {
                if (alive.lock()) release_early();
            });
            return;
        }
        early_timer_.expires_at(early_deadline_);
        early_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
            if (ec || !alive.lock() || !early_done_) return;
            CA_LOG(notice) << "card-early: no smartcard key within "
                           << std::chrono::duration<double>(early_wait_).count()
                           << " s; letting systemd-cryptsetup ask (a card inserted later still answers)";
            release_early();
        });
    }

    void release_early() {
        if (!early_done_) return;
        early_timer_.cancel();
        auto done = std::move(early_done_);
        early_done_ = nullptr;
        done();
    }

    [[nodiscard]] bool busy() const { return !in_progress_.empty() || next_outstanding_; }

    // A card response remembered in the boot cache (an earlier phase's card operation).
    std::optional<proto::Secret> memo_response(const std::vector<unsigned char>& seed) const {
        return memo_.response ? memo_.response(seed) : std::nullopt;
    }

    void start_jobs(const std::vector<std::string>& ids) {
        std::vector<std::pair<std::vector<unsigned char>, sc::CardService::ResponseHandler>> asks;
        std::vector<std::function<void()>> from_memo;
        bool enrolled = false;
        std::vector<unsigned char> enrolled_seed;  // shapes the fresh seed (an EC key's is a point)
        for (const auto& id : ids) {
            // Delivered once per Id: the server keeps them in its cache.  Asked
            // again, the server has rejected them (a retry with AcceptCached=0),
            // and the same key again would only feed a loop.
            if (stopped_ || in_progress_.count(id) || delivered_.count(id)) continue;
            auto set = find(id);
            if (!set || set->seeds.empty()) continue;
            if (set->enrolled && enrolled_seed.empty()) enrolled_seed = set->seeds.front();
            enrolled = enrolled || set->enrolled;
            in_progress_.insert(id);
            auto job = std::make_shared<Job>();
            job->id = id;
            job->set = std::move(*set);
            job->got.resize(job->set.seeds.size());
            job->outstanding = job->set.seeds.size();
            std::size_t remembered = 0;
            for (std::size_t i = 0; i < job->set.seeds.size(); ++i) {
                auto handler = [this, alive = std::weak_ptr<int>(alive_), job, i](sc::Expected<proto::Secret> r) {
                    // Completions may run after this source is gone (stop() fails them later).
                    if (alive.lock()) on_response(job, i, std::move(r));
                };
                if (auto r = memo_response(job->set.seeds[i])) {
                    ++remembered;
                    auto held = std::make_shared<proto::Secret>(std::move(*r));
                    from_memo.push_back([handler, held] { handler(std::move(*held)); });
                } else {
                    asks.emplace_back(job->set.seeds[i], std::move(handler));
                }
            }
            if (remembered == job->set.seeds.size())
                CA_LOG(info) << "'" << escaped(id)
                             << "': the card's response is in the boot cache (an earlier phase's card "
                             << "operation); no card needed";
            else
                CA_LOG(info) << "asking the smartcard for '" << escaped(id) << "' (" << job->set.seeds.size()
                             << " seed generation(s)); waiting for a card if none is inserted";
        }
        // Rotation at `finish` needs the card's response to a fresh seed: asked in this
        // same operation (no second PIN after the volumes are open), kept in the cache.
        if (!asks.empty() && enrolled && challenge_next_ && !next_requested_ && !memo_has_next()) {
            next_requested_ = true;
            next_outstanding_ = true;
            auto seed = sc::fresh_seed(card_options_, enrolled_seed);
            asks.emplace_back(seed, [this, alive = std::weak_ptr<int>(alive_), seed](sc::Expected<proto::Secret> r) {
                if (alive.lock()) on_next_response(seed, std::move(r));
            });
        }
        if (!asks.empty()) {
            if (!started_) {
                started_ = true;
                service_->start();  // the PC/SC thread only once a card volume is asked for
            }
            service_->request_responses(std::move(asks));
        }
        for (auto& f : from_memo) boost::asio::post(early_timer_.get_executor(), std::move(f));
    }

    [[nodiscard]] bool memo_has_next() const { return memo_.has_next && memo_.has_next(); }

    void remember(proto::CardResponse::Kind kind, const std::vector<unsigned char>& seed,
                  const proto::Secret& response) {
        if (!memo_.put || !stored_.emplace(kind, seed).second) return;
        memo_.put(kind, seed, response);
    }

    void on_next_response(const std::vector<unsigned char>& seed, sc::Expected<proto::Secret> r) {
        next_outstanding_ = false;
        if (r) {
            remember(proto::CardResponse::Kind::next, seed, *r);
            CA_LOG(info) << "the card answered a fresh seed for the rotation at finish (kept in the boot cache)";
        } else if (r.error().code != sc::Errc::cancelled) {
            CA_LOG(warning) << "the card did not answer the fresh seed for the rotation: " << r.error().message
                            << "; `finish` will need the card to rotate";
        }
        maybe_release_early();
    }

    void maybe_release_early() {
        if (busy() || !early_done_) return;
        CA_LOG(notice) << "card-early: the smartcard's work is done; systemd-cryptsetup may ask now";
        release_early();
    }

    static void log_notice(const sc::Notice& n) {
        switch (n.severity) {
        case sc::Notice::error: CA_LOG(err) << "smartcard: " << n.text; break;
        case sc::Notice::warning: CA_LOG(warning) << "smartcard: " << n.text; break;
        case sc::Notice::info: CA_LOG(info) << "smartcard: " << n.text; break;
        }
    }

    std::optional<VolumeSeedSet> find(const std::string& id) const {
        if (auto it = lookups_.find(id); it != lookups_.end()) return it->second;
        auto r = lookup_ ? lookup_(id) : std::nullopt;
        lookups_[id] = r;  // a header read once per Id, not per question
        return r;
    }

    // Like find(), but a volume not found yet (its device may appear later) is looked up again next time.
    std::optional<VolumeSeedSet> find_now(const std::string& id) const {
        if (auto it = lookups_.find(id); it != lookups_.end() && it->second) return it->second;
        auto r = lookup_ ? lookup_(id) : std::nullopt;
        if (r) lookups_[id] = r;
        return r;
    }

    void on_response(const std::shared_ptr<Job>& job, std::size_t i, sc::Expected<proto::Secret> r) {
        if (r) {
            remember(proto::CardResponse::Kind::current, job->set.seeds[i], *r);
            job->got[i] = sc::derive_volume_key(*r, job->set.seeds[i], job->set.uuid);
        } else if (!job->first_error) {
            job->first_error = r.error();
        }
        if (--job->outstanding != 0) return;
        in_progress_.erase(job->id);
        if (!job->got.empty() &&
            std::any_of(job->got.begin(), job->got.end(), [](const auto& g) { return g.has_value(); }))
            delivered_.insert(job->id);
        std::vector<proto::Secret> candidates;
        for (auto& g : job->got)
            if (g) candidates.push_back(std::move(*g));
        if (job->first_error && job->first_error->code != sc::Errc::cancelled)
            CA_LOG(warning) << "no smartcard key for '" << escaped(job->id) << "': " << job->first_error->message
                            << "; leaving the question to other agents";
        if (!candidates.empty() && !stopped_) deliver_(job->id, std::move(candidates));
        maybe_release_early();
    }

    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
    PinAsker asker_;
    boost::asio::steady_timer early_timer_;
    bool early_;
    std::chrono::milliseconds early_wait_;
    bool luks_tokens_;
    std::filesystem::path crypttab_;
    bool challenge_next_;
    std::function<void()> early_done_;
    std::chrono::steady_clock::time_point early_deadline_{};
    std::optional<std::chrono::steady_clock::time_point> first_known_;
    std::vector<std::string> early_ids_;
    std::vector<std::string> configured_;  // card-volume Ids, in configuration order
    bool all_requested_ = false;
    bool next_requested_ = false;
    bool next_outstanding_ = false;
    SeedLookup lookup_;
    Deliver deliver_;
    BootMemo memo_;
    sc::CardOptions card_options_;
    std::shared_ptr<sc::CardService> service_;
    mutable std::map<std::string, std::optional<VolumeSeedSet>> lookups_;
    std::set<std::string> in_progress_;
    std::set<std::string> delivered_;
    std::set<std::pair<proto::CardResponse::Kind, std::vector<unsigned char>>> stored_;  // kept by this instance
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace

std::unique_ptr<CandidateSource> make_card_source(boost::asio::io_context& io, const CardSourceConfig& config,
                                                  const std::filesystem::path& ask_dir, SeedLookup lookup,
                                                  CandidateSource::Deliver deliver, BootMemo memo) {
    if (!config.enabled()) return nullptr;
    return std::make_unique<CardSource>(io, config, ask_dir, std::move(lookup), std::move(deliver), std::move(memo));
}

std::unique_ptr<CandidateSource> make_card_source(boost::asio::io_context& io, const CardSourceConfig& config,
                                                  const std::filesystem::path& ask_dir,
                                                  CandidateSource::Deliver deliver, BootMemo memo) {
    if (!config.enabled()) return nullptr;
    return make_card_source(io, config, ask_dir, make_seed_lookup(config), std::move(deliver), std::move(memo));
}

}  // namespace ca::agent
