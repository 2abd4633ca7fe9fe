#pragma once
// Worker: one thread running one io_context. A channel is created on a worker by the acceptor
// of that worker and stays there for its whole life, so nothing in a channel needs a lock.
#include <algorithm>
#include <atomic>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive/list.hpp>
#include <chrono>
#include <thread>

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
  Worker(unsigned i, unsigned max_pipes) : index(i), pipes(max_pipes, std::min(max_pipes, 8u)) {}
  ~Worker();  // where Channel is complete
  unsigned index;
  // Declared before io: destroying io destroys pending handlers, which may own channels, and
  // a channel's destructor still uses these.
  ChunkPool pool;
  PipePool pipes;
  // The channels alive on this worker; touched on this worker's thread only.
  boost::intrusive::list<Channel, boost::intrusive::base_hook<ChannelHook>,
                         boost::intrusive::constant_time_size<false>>
      channels;
  std::atomic<std::size_t> live{0};  // read by the main thread while draining
  boost::asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_running{
      io.get_executor()};
  std::thread thread;
};

}  // namespace sluice
