// SPDX-License-Identifier: MIT
#include "agent/answer/questions.hpp"

#include <algorithm>

namespace ca::agent {

void QuestionTable::transition(TrackedAsk& q, TrackedAsk::State to) noexcept {
    using S = TrackedAsk::State;
    if (q.state == to) return;
    q.state = to;
    switch (to) {
    case S::answered: ++stats_.answered; break;
    case S::skipped: ++stats_.skipped; break;
    case S::ignored: ++stats_.ignored; break;
    case S::gone: ++stats_.gone; break;
    case S::waiting:
    case S::held:
    case S::sending:
    case S::retry: break;
    }
}

TrackedAsk* QuestionTable::find(const std::string& name) const {
    auto it = table_.find(name);
    return it == table_.end() ? nullptr : it->second.get();
}

TrackedAsk& QuestionTable::add(Ptr q) {
    auto& ref = *q;
    table_.insert_or_assign(ref.name, std::move(q));
    return ref;
}

QuestionTable::Ptr QuestionTable::remove(const std::string& name) {
    auto it = table_.find(name);
    if (it == table_.end()) return nullptr;
    auto q = std::move(it->second);
    table_.erase(it);
    return q;
}

void QuestionTable::drop_left_alone() {
    for (auto it = table_.begin(); it != table_.end();) {
        if (it->second->left_alone()) it = table_.erase(it);
        else ++it;
    }
}

std::vector<TrackedAsk*> QuestionTable::in_state(TrackedAsk::State s) const {
    std::vector<TrackedAsk*> out;
    for (const auto& [name, q] : table_)
        if (q->state == s) out.push_back(q.get());
    return out;
}

std::vector<std::string> QuestionTable::names_absent_from(const std::vector<std::string>& present_sorted) const {
    std::vector<std::string> out;
    for (const auto& [name, q] : table_)
        if (!std::binary_search(present_sorted.begin(), present_sorted.end(), name)) out.push_back(name);
    return out;
}

}  // namespace ca::agent
