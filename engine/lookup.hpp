#pragma once
// Lookup: host-name resolution for the workers. getaddrinfo blocks, and a worker's io_context
// runs without locks, where Asio refuses its own resolver; so names are looked up on a few
// threads of their own and each answer is posted back to the worker that asked.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <string>
#include <vector>

#include "sluice/context.hpp"

namespace sluice {

struct Worker;

class Lookup {
 public:
  using Done = Context::Resolved;  // what a middleware's ctx.resolve takes, too
  // Two threads: one DNS server that hangs does not hold up every other lookup at once.
  Lookup() : threads_(2) {}
  // Waits for the lookups in progress (getaddrinfo cannot be interrupted); answers that were
  // not delivered are dropped with the worker's mailbox.
  ~Lookup() { stop(); }
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;

  // Any thread; `done` runs on `to`'s thread, with the addresses in getaddrinfo's order.
  void resolve(Worker& to, std::string host, std::string port, Done done);
  // Drops the lookups not yet started and joins the threads. Idempotent.
  void stop();

 private:
  boost::asio::thread_pool threads_;
};

}  // namespace sluice
