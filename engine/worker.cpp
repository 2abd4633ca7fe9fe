#include "worker.hpp"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/posix/descriptor_base.hpp>
#include <optional>
#include <system_error>

#include "channel.hpp"
#include "log.hpp"
#include "poll_window.hpp"
#include "reactor_access.hpp"

namespace sluice {

namespace {

int make_eventfd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::system_category(), "eventfd");
  return fd;
}

// The scheduler's queue is private: an explicit instantiation may name a private member, and
// hands its address out through a friend function. At most one such instantiation may be in the
// program, hence here and not in reactor_access.hpp.
using SchedulerQueue = boost::asio::detail::op_queue<boost::asio::detail::scheduler_operation>
    boost::asio::detail::scheduler::*;
struct SchedulerQueueTag {
  friend SchedulerQueue scheduler_queue(SchedulerQueueTag);
};
template <SchedulerQueue Member>
struct SchedulerQueueOf {
  friend SchedulerQueue scheduler_queue(SchedulerQueueTag) { return Member; }
};
template struct SchedulerQueueOf<&boost::asio::detail::scheduler::op_queue_>;

}  // namespace

bool only_reactor_queued(boost::asio::detail::scheduler& scheduler) {
  using Access = boost::asio::detail::op_queue_access;
  auto* const front = Access::front(scheduler.*scheduler_queue(SchedulerQueueTag{}));
  return front && !Access::next(front);
}

Worker::Worker(unsigned i, unsigned max_pipes, std::chrono::microseconds busy, Lookup& l)
    : index(i),
      busy_poll(busy),
      lookup(l),
      pipes(max_pipes, std::min(max_pipes, 8u)),
      bell_(io, make_eventfd()) {
  // Still on the constructing thread, before this worker's thread exists: nothing races.
  await_mail();
}

Worker::~Worker() {
  // Channels still open when the worker stops (shutdown gave up on them) hold themselves; the
  // pending handlers destroyed with `io` then free them.
  while (!channels.empty()) channels.front().release();
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard lock(mail_mutex_);
    mail_.push_back(std::move(task));
  }
  const std::uint64_t one = 1;
  // Cannot fail short of a counter at 2^64 - 1; a lost ring would only delay the task.
  [[maybe_unused]] const auto n = ::write(bell_.native_handle(), &one, sizeof one);
}

void Worker::run() {
  if (busy_poll.count() == 0) {
    io.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  auto& scheduler = boost::asio::use_service<boost::asio::detail::scheduler>(io);
  PollWindow window(busy_poll);
  // Polls until `until`: the gap from `idle` to the event it caught, taken before the event's
  // handler ran (a slow handler is no gap), or nothing.
  auto poll_until = [this](Clock::time_point idle,
                           Clock::time_point until) -> std::optional<Clock::duration> {
    for (auto now = idle; now < until; now = Clock::now()) {
      if (io.poll_one() != 0) return now - idle;
      // The proxy's peers may be waiting for this core (on loopback, or a machine with few
      // cores): a spin that yields costs them nothing, one that does not took a fifth off the
      // 1-stream throughput in bench/.
      sched_yield();
    }
    return std::nullopt;
  };
  while (!io.stopped()) {
    // Ready handlers run first; the worker is idle only once none is left.
    if (!only_reactor_queued(scheduler)) {
      io.run_one();
      continue;
    }
    const auto idle = Clock::now();
    if (const auto gap = poll_until(idle, idle + window.current())) {
      window.learn(*gap);
      continue;
    }
    // Sleeps until the next event. This gap also holds the wake-up and one handler, which can
    // only make a gap near the limit count as long: less polling, never more.
    if (io.run_one() == 0) break;  // stopped
    window.learn(Clock::now() - idle);
  }
}

void Worker::stop() {
  post([this] { io.stop(); });
}

void Worker::await_mail() {
  bell_.async_wait(boost::asio::posix::descriptor_base::wait_read, [this](auto ec) {
    if (ec) return;
    std::uint64_t rings;
    [[maybe_unused]] const auto n = ::read(bell_.native_handle(), &rings, sizeof rings);
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard lock(mail_mutex_);
      tasks.swap(mail_);
    }
    await_mail();  // first: a task that throws must not leave the mailbox deaf
    for (auto& task : tasks) {
      try {
        task();
      } catch (const std::exception& e) {
        spdlog::error("worker {}: unexpected exception: {}", index, e.what());
      }
    }
  });
}

}  // namespace sluice
