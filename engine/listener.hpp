#pragma once
// Listener: one listen address, with one acceptor per worker bound with SO_REUSEPORT so the
// kernel spreads new connections over the workers (no hand-off between threads). Each acceptor
// keeps its own pointer to the current ListenerSpec, replaced on its worker by update(), so a
// reload changes what new channels get without touching a running one.
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <vector>

#include "runtime.hpp"
#include "worker.hpp"

namespace sluice {

class Listener {
 public:
  // Binds and listens on every worker; throws std::system_error if the address cannot be used.
  Listener(const std::vector<std::unique_ptr<Worker>>& workers,
           std::shared_ptr<const ListenerSpec> spec);
  ~Listener();
  void start();  // begin accepting (once; later calls do nothing)
  void update(std::shared_ptr<const ListenerSpec> spec);
  void stop();  // stop accepting; open channels go on
  const boost::asio::ip::tcp::endpoint& address() const { return address_; }
  const ListenerSpec& spec() const { return *spec_; }

  struct Acceptor;

 private:
  std::vector<std::shared_ptr<Acceptor>> acceptors_;
  std::shared_ptr<const ListenerSpec> spec_;
  boost::asio::ip::tcp::endpoint address_;
  bool started_ = false;
};

}  // namespace sluice
