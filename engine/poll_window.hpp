#pragma once
// PollWindow: how long a worker that has run out of events goes on polling for the next one
// before it sleeps, learnt from its idle gaps the way KVM learns its halt polling. A gap that
// ended within `limit` would have needed no wake-up had the worker polled that long, so the
// window doubles towards it; a gap longer than `limit` halves it, and below `limit / 8` it is
// 0. A worker whose next event tends to come soon (a request and its reply on loopback) stops
// paying a wake-up per event; one whose events are sparse stops polling after a few gaps, so it
// never costs more than `limit` of a core per event and nothing while idle.
#include <algorithm>
#include <chrono>

namespace sluice {

class PollWindow {
 public:
  using Duration = std::chrono::nanoseconds;

  explicit PollWindow(Duration limit) : limit_(limit), floor_(limit / 8) {}

  // How long to poll now, before sleeping.
  Duration current() const { return window_; }

  // After an idle gap: the time from running out of events to the next one, polled or slept.
  void learn(Duration gap) {
    if (gap <= window_) return;  // polling caught it
    if (gap <= limit_)
      window_ = std::min(limit_, std::max(2 * window_, floor_));
    else
      window_ = window_ / 2 < floor_ ? Duration::zero() : window_ / 2;
  }

 private:
  Duration limit_;
  Duration floor_;
  Duration window_{0};
};

}  // namespace sluice
