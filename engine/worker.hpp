#pragma once
// Worker: one thread running one io_context. A channel is created on a worker by the acceptor
// of that worker and stays there for its whole life, so nothing in a channel needs a lock.
//
// The io_context runs without any locking (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE): no mutex per
// handler on the data path. The price is that nothing may touch it from another thread: other
// threads hand work over with post() (the worker's mailbox) and stop it with stop(), and host
// names are looked up on the engine's Lookup threads (Asio refuses its resolver on such a loop).
#include <algorithm>
#include <atomic>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>
#include <boost/intrusive/list.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "lookup.hpp"
#include "pipe.hpp"
#include "sluice/pipeline.hpp"

namespace sluice {

class Channel;
using ChannelHook =
    boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

// A worker's sockets and timers name the io_context's own executor, not the type-erased
// any_io_executor: a smaller object and no dynamic dispatch per operation.
using Socket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;
using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                boost::asio::wait_traits<std::chrono::steady_clock>,
                                                boost::asio::io_context::executor_type>;

struct Worker {
  Worker(unsigned i, unsigned max_pipes, std::chrono::microseconds busy_poll, Lookup& lookup);
  ~Worker();  // where Channel is complete
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // From any thread: runs `task` on this worker's thread, in the order posted. Before the thread
  // runs, tasks wait; if it never does, they are destroyed with the worker.
  void post(std::function<void()> task);
  // On this worker's thread: runs io until stop(). With busy_poll above zero, a worker that ran
  // out of events polls (epoll_wait with a zero timeout) for up to that long before it sleeps,
  // while its recent idle gaps, two in a row, ended within it (PollWindow): a reply that comes
  // back soon needs no wake-up of this thread; sparse events and an idle worker cost no polling.
  void run();
  // From any thread: run() returns once the tasks posted before have run.
  void stop();
  // On this worker's thread: looks `host` up without blocking it; `done` runs here later.
  void resolve(std::string host, std::string port, Lookup::Done done) {
    lookup.resolve(*this, std::move(host), std::move(port), std::move(done));
  }

  unsigned index;
  std::chrono::microseconds busy_poll;
  Lookup& lookup;
  // Declared before io: destroying io destroys pending handlers, which may own channels, and
  // a channel's destructor still uses these.
  ChunkPool pool;
  // Where a channel whose chain sees no bytes reads into, when its sink keeps up: one chunk's
  // worth, in use only between a recv and the send that follows it.
  std::unique_ptr<char[]> scratch{new char[pool.chunk_size()]};
  PipePool pipes;
  // The channels alive on this worker; touched on this worker's thread only.
  boost::intrusive::list<Channel, boost::intrusive::base_hook<ChannelHook>,
                         boost::intrusive::constant_time_size<false>>
      channels;
  std::atomic<std::size_t> live{0};  // read by the main thread while draining
  boost::asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  // io's reactor, for ReadableWait, looked up once: use_service takes a mutex and compares type
  // names, a few hundred instructions that a park per message cannot afford.
  boost::asio::detail::reactor& reactor =
      boost::asio::use_service<boost::asio::detail::reactor>(io);
  std::thread thread;

 private:
  void await_mail();
  std::mutex mail_mutex_;
  std::vector<std::function<void()>> mail_;
  // An eventfd, written once per post: the one thing another thread touches. Its pending wait
  // also keeps io.run() from returning while the worker has nothing else to do.
  boost::asio::posix::basic_stream_descriptor<boost::asio::io_context::executor_type> bell_;
};

}  // namespace sluice
