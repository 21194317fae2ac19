// SPDX-License-Identifier: MIT

#include "smartcard/blocking.hpp"

#include <boost/asio/steady_timer.hpp>

#include <optional>

namespace ca::smartcard {

Expected<std::vector<proto::Secret>> responses_blocking(const BlockingOptions& options,
                                                        const std::vector<std::vector<unsigned char>>& seeds,
                                                        bool check_determinism) {
    boost::asio::io_context io;
    std::unique_ptr<PinPrompt> pin = options.pin ? options.pin(io) : nullptr;
    std::optional<Error> error;
    std::vector<std::optional<proto::Secret>> got(seeds.size());
    std::size_t outstanding = seeds.size();

    auto service = CardService::create(io.get_executor(), options.card, pin.get(), options.notice);
    boost::asio::steady_timer deadline(io);
    auto finish = [&] {
        deadline.cancel();
        service->stop();
    };
    deadline.expires_after(options.wait_for_card);
    deadline.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        error = make_error(Errc::timeout,
                           "no usable card answered within " + std::to_string(options.wait_for_card.count()) + " ms");
        finish();
    });
    service->start();
    for (std::size_t i = 0; i < seeds.size(); ++i) {
        service->request_response(seeds[i], check_determinism, [&, i](Expected<proto::Secret> r) {
            if (!r) {
                if (!error) error = std::move(r).error();
                finish();
                return;
            }
            got[i] = std::move(r).value();
            if (--outstanding == 0) finish();
        });
    }
    if (seeds.empty()) finish();
    io.run();
    if (error) return *error;
    std::vector<proto::Secret> out;
    for (auto& g : got) out.push_back(std::move(*g));
    return out;
}

ChallengeFn make_challenge_fn(BlockingOptions options, bool check_determinism) {
    return [options = std::move(options),
            check_determinism](std::span<const unsigned char> seed) -> Expected<proto::Secret> {
        auto r = responses_blocking(options, {std::vector<unsigned char>(seed.begin(), seed.end())}, check_determinism);
        if (!r) return std::move(r).error();
        return std::move(r.value().front());
    };
}

}  // namespace ca::smartcard
