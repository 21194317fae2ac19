// SPDX-License-Identifier: MIT
// The answer policy (agent/answer/policy): which candidates a question gets, in which order,
// and what an AcceptCached=0 retry teaches.
#include <boost/test/unit_test.hpp>
#include "printers.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/answer/hash_set.hpp"
#include "agent/answer/policy.hpp"

using namespace ca::agent;
using ca::proto::CachedCandidate;
using ca::proto::CachePayload;
using ca::proto::Origin;
using ca::proto::Secret;

namespace {

CachedCandidate candidate(const char* value, Origin origin, std::uint64_t added_us,
                          std::vector<std::string> patterns = {}, bool opened = false) {
    CachedCandidate c;
    c.value = Secret::copy_of(value);
    c.origin = origin;
    c.added_us = added_us;
    c.patterns = std::move(patterns);
    c.opened = opened;
    return c;
}

const std::unordered_map<std::uint64_t, std::uint64_t> kNone;

}  // namespace

BOOST_AUTO_TEST_SUITE(policy)

BOOST_AUTO_TEST_CASE(rank_exact_id_then_opened_then_newest) {
    CachePayload p;
    p.candidates.push_back(candidate("old", Origin::put, 10));                              // 0
    p.candidates.push_back(candidate("new", Origin::harvested, 30));                        // 1
    p.candidates.push_back(candidate("opened", Origin::put, 5, {}, true));                  // 2
    p.candidates.push_back(candidate("exact", Origin::card, 1, {"cryptsetup:/dev/vda2"}));  // 3
    p.candidates.push_back(candidate("glob", Origin::card, 40, {"cryptsetup:/dev/vda*"}));  // 4
    const std::vector<std::uint64_t> hashes{100, 101, 102, 103, 104};
    IdState ids;
    const auto order = eligible_ranked(p, hashes, ids, {}, "cryptsetup:/dev/vda2");
    BOOST_TEST((order == std::vector<std::size_t>{3, 2, 4, 1, 0}));
}

BOOST_AUTO_TEST_CASE(eligible_leaves_out_rejected_sent_and_other_ids) {
    CachePayload p;
    p.candidates.push_back(candidate("a", Origin::put, 1));
    p.candidates.push_back(candidate("b", Origin::put, 2));
    p.candidates.push_back(candidate("c", Origin::put, 3));
    p.candidates.push_back(candidate("d", Origin::card, 4, {"cryptsetup:/dev/vdb1"}));
    const std::vector<std::uint64_t> hashes{1, 2, 3, 4};
    IdState ids;
    ids.rejected.insert(1);
    const std::vector<std::uint64_t> sent{2};
    const auto order = eligible_ranked(p, hashes, ids, sent, "cryptsetup:/dev/vda2");
    BOOST_TEST((order == std::vector<std::size_t>{2}));
    BOOST_TEST(eligible_ranked(p, hashes, ids, sent, "cryptsetup:/dev/vdb1").front() == 3u);
}

BOOST_AUTO_TEST_CASE(ties_keep_cache_order) {
    CachePayload p;
    p.candidates.push_back(candidate("x", Origin::put, 7));
    p.candidates.push_back(candidate("y", Origin::put, 7));
    const std::vector<std::uint64_t> hashes{1, 2};
    IdState ids;
    BOOST_TEST((eligible_ranked(p, hashes, ids, {}, "cryptsetup:x") == std::vector<std::size_t>{0, 1}));
}

BOOST_AUTO_TEST_CASE(learn_rejects_what_was_sent_and_clears_opened) {
    CachePayload p;
    p.candidates.push_back(candidate("sent", Origin::put, 1, {}, true));
    p.candidates.push_back(candidate("other", Origin::put, 2));
    const std::vector<std::uint64_t> hashes{11, 12};
    IdState ids;
    ids.seen = true;
    ids.last_ask_us = 50;
    ids.sent.insert(11);
    const auto learnt = learn_from_retry(ids, &p, hashes, EntryHistory{kNone, kNone}, {true, false});
    BOOST_TEST(learnt.rejected == 1u);
    BOOST_TEST(learnt.excused == 0u);
    BOOST_TEST(ids.rejected.count(11) == 1u);
    BOOST_TEST(ids.rejected.count(12) == 0u);
    BOOST_TEST(ids.sent.empty());
    BOOST_TEST(!p.candidates[0].opened);
    // The same retry again learns nothing new.
    BOOST_TEST(learn_from_retry(ids, &p, hashes, EntryHistory{kNone, kNone}, {true, false}).rejected == 0u);
}

BOOST_AUTO_TEST_CASE(first_ask_marked_retry_rejects_what_systemd_tried) {
    // AcceptCached=0 on the first ask of an Id: systemd tried its entry (typed, or seen there).
    CachePayload p;
    p.candidates.push_back(candidate("typed", Origin::harvested, 5));
    p.candidates.push_back(candidate("put", Origin::put, 6));
    p.candidates.push_back(candidate("pushed", Origin::put, 7));
    const std::vector<std::uint64_t> hashes{1, 2, 3};
    const std::unordered_map<std::uint64_t, std::uint64_t> first_seen{{3, 8}};
    IdState ids;  // never seen
    const auto learnt = learn_from_retry(ids, &p, hashes, EntryHistory{first_seen, kNone}, {true, false});
    BOOST_TEST(learnt.rejected == 2u);
    BOOST_TEST(ids.rejected.count(1) == 1u);
    BOOST_TEST(ids.rejected.count(2) == 0u);
    BOOST_TEST(ids.rejected.count(3) == 1u);
}

BOOST_AUTO_TEST_CASE(later_retry_rejects_only_what_was_typed_since) {
    CachePayload p;
    p.candidates.push_back(candidate("typed-before", Origin::harvested, 10));
    p.candidates.push_back(candidate("typed-after", Origin::harvested, 30));
    const std::vector<std::uint64_t> hashes{1, 2};
    IdState ids;
    ids.seen = true;
    ids.last_ask_us = 20;
    learn_from_retry(ids, &p, hashes, EntryHistory{kNone, kNone}, {true, false});
    BOOST_TEST(ids.rejected.count(1) == 0u);
    BOOST_TEST(ids.rejected.count(2) == 1u);
}

BOOST_AUTO_TEST_CASE(asker_that_took_the_entry_is_excused_once) {
    // What we sent never arrived in systemd's entry, but another value did after this Id
    // asked: the asker took the entry, so our candidate is offered once more, once only.
    CachePayload p;
    p.candidates.push_back(candidate("ours", Origin::card, 1, {"cryptsetup:/dev/vda2"}));
    const std::vector<std::uint64_t> hashes{1};
    const std::unordered_map<std::uint64_t, std::uint64_t> last_arrived{{99, 60}};
    IdState ids;
    ids.seen = true;
    ids.last_ask_us = 50;
    ids.sent.insert(1);
    auto learnt = learn_from_retry(ids, &p, hashes, EntryHistory{kNone, last_arrived}, {true, false});
    BOOST_TEST(learnt.excused == 1u);
    BOOST_TEST(learnt.rejected == 0u);
    BOOST_TEST(ids.rejected.empty());
    // Sent again and asked again: no second excuse.
    ids.sent.insert(1);
    learnt = learn_from_retry(ids, &p, hashes, EntryHistory{kNone, last_arrived}, {true, false});
    BOOST_TEST(learnt.excused == 0u);
    BOOST_TEST(learnt.rejected == 1u);
    // With push-systemd the agent itself fills the entry: no excuse.
    IdState pushed;
    pushed.seen = true;
    pushed.last_ask_us = 50;
    pushed.sent.insert(1);
    BOOST_TEST(learn_from_retry(pushed, &p, hashes, EntryHistory{kNone, last_arrived}, {true, true}).excused == 0u);
}

BOOST_AUTO_TEST_CASE(learn_without_a_cache) {
    IdState ids;
    ids.seen = true;
    ids.sent.insert(5);
    const auto learnt = learn_from_retry(ids, nullptr, {}, EntryHistory{kNone, kNone}, {});
    BOOST_TEST(learnt.rejected == 1u);
    BOOST_TEST(ids.sent.empty());
}

// IdState's sets: set semantics on a sorted vector.
BOOST_AUTO_TEST_CASE(hash_set_is_a_set) {
    HashSet s;
    BOOST_TEST(s.empty());
    BOOST_TEST(s.insert(30).second);
    BOOST_TEST(s.insert(10).second);
    BOOST_TEST(!s.insert(30).second);
    BOOST_TEST(s.insert(20).second);
    BOOST_TEST(s.size() == 3u);
    BOOST_TEST(s.count(20) == 1u);
    BOOST_TEST(s.count(25) == 0u);
    BOOST_TEST((std::vector<std::uint64_t>(s.begin(), s.end()) == std::vector<std::uint64_t>{10, 20, 30}));
    BOOST_TEST(s.erase(20) == 1u);
    BOOST_TEST(s.erase(20) == 0u);
    BOOST_TEST(s.count(20) == 0u);
    s.clear();
    BOOST_TEST(s.empty());
}

BOOST_AUTO_TEST_SUITE_END()
