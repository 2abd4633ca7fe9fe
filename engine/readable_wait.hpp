#pragma once
// ReadableWait: waits for a socket of a worker to become readable without touching its epoll
// registration. Asio's async_wait starts non-speculatively, and its reactor then re-arms the
// socket with EPOLL_CTL_MOD on every wait: a system call per parked read. Asio registers each
// socket once, edge-triggered, for EPOLLIN; so a caller whose read of the socket returned EAGAIN
// right before waiting needs no re-arm: every byte, FIN or error that arrives after that read
// raises a new edge, which completes the wait. A short read is not enough: a FIN that came with
// the last bytes raised no edge of its own (one edge covered both), and the wait would hang. A
// read whose TCP_INQ hint said nothing was left, neither bytes nor a FIN, is as good as EAGAIN,
// unless drained_read_may_park() says no: the hint does not count a reset (RST).
//
// Contract: start() only right after such a read, on the worker's thread (a single-threaded
// io_context: no reactor run can fall between the read and start()). One wait at a time per
// object; `owner` is held until `done` runs, so the object (a member of the owner) outlives the
// wait. A closed socket completes the wait with operation_aborted; a destroyed io_context drops
// `owner` without calling `done`.
//
// This reaches into Asio's reactor: see reactor_access.hpp.
#include <boost/asio/detail/reactor_op.hpp>
#include <memory>

#include "reactor_access.hpp"

namespace sluice {

// After a read whose TCP_INQ hint said nothing was left: whether a park is safe. Not when the
// reactor's last events for the socket had EPOLLERR or EPOLLHUP: an RST that came behind the last
// bytes is neither bytes nor a FIN to the hint, and its edge has been taken already (with the
// bytes', or while no wait was queued), so only a further read finds it. An RST that comes later
// raises an edge of its own.
inline bool drained_read_may_park(Socket& socket) {
  return (last_events(socket) & (EPOLLERR | EPOLLHUP)) == 0;
}

template <class Owner>
class ReadableWait final : boost::asio::detail::reactor_op {
 public:
  using Done = void (*)(Owner&, const boost::system::error_code&);

  explicit ReadableWait(Done done)
      : reactor_op(boost::system::error_code(), &ReadableWait::perform_op,
                   &ReadableWait::complete_op),
        done_(done) {}
  ReadableWait(const ReadableWait&) = delete;
  ReadableWait& operator=(const ReadableWait&) = delete;

  // `reactor` is the one of the socket's io_context (Worker::reactor).
  void start(boost::asio::detail::reactor& reactor, Socket& socket, std::shared_ptr<Owner> owner) {
    auto& state = detail::SocketAccess::state(socket);
    ec_ = {};
    owner_ = std::move(owner);
    // Speculative start: for a read, the reactor then only queues the op (no epoll_ctl), after
    // asking perform_op once whether it is done already; it is not (see the contract).
    starting_ = true;
    reactor.start_op(boost::asio::detail::reactor::read_op, state.socket_, state.reactor_data_,
                     this, false, true);
    starting_ = false;
  }

 private:
  static status perform_op(reactor_op* base) {
    // Called by the reactor once an event (EPOLLIN, EPOLLHUP or EPOLLERR) arrived: readable.
    return static_cast<ReadableWait*>(base)->starting_ ? not_done : done_and_exhausted;
  }
  static void complete_op(void* scheduler, boost::asio::detail::scheduler_operation* base,
                          const boost::system::error_code&, std::size_t) {
    auto* self = static_cast<ReadableWait*>(base);
    // Moved out first: dropping the last hold on the owner may destroy this object.
    std::shared_ptr<Owner> owner = std::move(self->owner_);
    if (scheduler && owner) self->done_(*owner, self->ec_);
  }

  Done done_;
  std::shared_ptr<Owner> owner_;
  bool starting_ = false;
};

}  // namespace sluice
