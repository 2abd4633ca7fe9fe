#include "lookup.hpp"

#include <boost/asio/post.hpp>

#include "worker.hpp"

namespace sluice {

void Lookup::resolve(Worker& to, std::string host, std::string port, Done done) {
  boost::asio::post(threads_, [this, &to, host = std::move(host), port = std::move(port),
                               done = std::move(done)]() mutable {
    boost::asio::ip::tcp::resolver resolver(threads_.get_executor());
    boost::system::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
    for (const auto& r : results) endpoints.push_back(r.endpoint());
    to.post([done = std::move(done), ec, endpoints = std::move(endpoints)]() mutable {
      done(ec, std::move(endpoints));
    });
  });
}

void Lookup::stop() {
  threads_.stop();
  threads_.join();
}

}  // namespace sluice
