#pragma once
// PollWindow: how long a worker that has run out of events goes on polling for the next one
// before it sleeps, learnt from its idle gaps the way KVM learns its halt polling. Two gaps in a
// row that ended within `limit` would have needed no wake-up had the worker polled that long, so
// the window doubles towards them; a gap longer than `limit` halves it, and below `limit / 8` it
// is 0. Asking for two short gaps in a row keeps a proxy's usual rhythm from polling: a quick
// reply from the upstream, then a long wait for the client's next request, would otherwise open
// the window on every reply and spend it on every wait. So a worker that moves a back-and-forth
// exchange stops paying a wake-up per message; one whose events are sparse, or only every other
// gap short, does not poll, and polling never costs more than `limit` of a core per event.
#include <algorithm>
#include <chrono>

namespace sluice {

class PollWindow {
 public:
  using Duration = std::chrono::nanoseconds;

  explicit PollWindow(Duration limit) : limit_(limit), floor_(std::max(limit / 8, Duration(1))) {}

  // How long to poll now, before sleeping.
  Duration current() const { return window_; }

  // After an idle gap: the time from running out of events to the next one, polled or slept.
  void learn(Duration gap) {
    if (gap <= limit_) {
      if (gap > window_ && last_was_short_)
        window_ = std::min(limit_, std::max(2 * window_, floor_));
      last_was_short_ = true;
    } else {
      window_ = window_ / 2 < floor_ ? Duration::zero() : window_ / 2;
      last_was_short_ = false;
    }
  }

 private:
  Duration limit_;
  Duration floor_;
  Duration window_{0};
  bool last_was_short_ = false;
};

}  // namespace sluice
