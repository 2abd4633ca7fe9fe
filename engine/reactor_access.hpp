#pragma once
// What sluice reaches of Asio's epoll reactor and scheduler (boost::asio::detail): the reactor
// state of a worker's socket, which basic_socket keeps protected, and whether the scheduler has a
// handler ready, which it keeps private. Pinned to the Asio of Debian 12's Boost
// 1.81, whose reactor readable_wait.hpp and adopt() were written against and measured on.
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdint>

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/version.hpp>
#include <boost/system/error_code.hpp>

#include "worker.hpp"

#if BOOST_ASIO_VERSION != 102600 || !defined(BOOST_ASIO_HAS_EPOLL) || \
    defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error \
    "reactor_access.hpp is written against Boost 1.81's Asio epoll reactor: check it for this Boost"
#endif

namespace sluice {

namespace detail {
struct SocketAccess : Socket {
  static auto& state(Socket& s) { return (s.*&SocketAccess::impl_).get_implementation(); }
};
struct OperationAccess : boost::asio::detail::scheduler_operation {
  static unsigned& result(scheduler_operation& op) { return op.*&OperationAccess::task_result_; }
};
// Asio's run() stores the events it took from epoll for a socket in the socket's descriptor state,
// an operation (a private base, hence the C-style cast), as its task_result_, until the next.
inline unsigned& taken_events(boost::asio::detail::epoll_reactor::descriptor_state* state) {
  return OperationAccess::result(*(boost::asio::detail::scheduler_operation*)state);
}
}  // namespace detail

// The epoll events the reactor took last for `socket` (EPOLLIN, EPOLLERR, ...), whether or not a
// wait was queued then. epoll reports a socket's whole readiness at that moment, not what
// changed. A socket that is not registered reports EPOLLERR.
inline std::uint32_t last_events(Socket& socket) {
  auto* const state = detail::SocketAccess::state(socket).reactor_data_;
  return state ? detail::taken_events(state) : EPOLLERR;
}

// Whether the next run_one() of a single-threaded io_context (its only thread, between handlers)
// would sleep in epoll_wait: its queue holds only the reactor's marker, no ready handler. The
// marker is always queued then, once the reactor was started (a Worker's mailbox wait starts it
// in the constructor), since it is only taken out while it runs. Defined in
// worker.cpp, the one place that may name the scheduler's private queue.
bool only_reactor_queued(boost::asio::detail::scheduler& scheduler);

// Hands `fd` to `socket` the way Asio keeps a socket it opened itself. `fd` must be a socket this
// process made non-blocking and close-on-exec (socket(2) or accept4(2) flags) and never
// duplicates: Asio then makes no ioctl(FIONBIO) before the first operation, and no EPOLL_CTL_DEL
// at close (closing the only descriptor of a socket takes it out of epoll). assign() can assume
// neither of a descriptor it did not make: two system calls per socket. On failure `fd` is closed.
inline void adopt(Socket& socket, const boost::asio::ip::tcp& protocol, int fd,
                  boost::system::error_code& ec) {
  namespace ops = boost::asio::detail::socket_ops;
  socket.assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  auto& impl = detail::SocketAccess::state(socket);
  impl.state_ =
      static_cast<ops::state_type>((impl.state_ | ops::internal_non_blocking) & ~ops::possible_dup);
  // The reactor state may be a closed socket's, reused: its last events (its EPOLLHUP, say) are
  // not this socket's, and would cost last_events()' callers a read per socket.
  if (impl.reactor_data_) detail::taken_events(impl.reactor_data_) = 0;
}

}  // namespace sluice
