#pragma once
// Pipe: a kernel pipe through which splice(2) moves a direction's bytes from one socket to the
// other without copying them into user space. PipePool: a worker's pipes. A channel holds one
// only while bytes of a bulk transfer are in flight, and the pool is bounded because every pipe
// costs two descriptors of the process (20,000 at most on our machines, and 9,900 channels
// already take 19,800): when it is exhausted, or pipe2 fails, a direction reads buffered.
#include <cstddef>
#include <vector>

namespace sluice {

class Pipe {
 public:
  Pipe() = default;
  Pipe(Pipe&& o) noexcept : read_(o.read_), write_(o.write_), capacity_(o.capacity_) {
    o.read_ = o.write_ = -1;
  }
  Pipe& operator=(Pipe&& o) noexcept;
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() { reset(); }

  explicit operator bool() const { return read_ >= 0; }
  int read_end() const { return read_; }
  int write_end() const { return write_; }
  std::size_t capacity() const { return capacity_; }
  void reset();

 private:
  friend class PipePool;
  int read_ = -1, write_ = -1;
  std::size_t capacity_ = 0;
};

class PipePool {
 public:
  // At most `max_open` pipes exist at once (in use or free); at most `max_free` wait unused.
  PipePool(std::size_t max_open, std::size_t max_free) : max_open_(max_open), max_free_(max_free) {}
  // An empty pipe, or a null one when the pool is exhausted or the kernel refuses.
  Pipe take();
  // `empty`: no byte left in it, so it can serve another transfer; otherwise it is closed.
  void give(Pipe&& p, bool empty);
  std::size_t open_count() const { return open_; }

 private:
  std::size_t max_open_, max_free_;
  std::size_t open_ = 0;
  std::vector<Pipe> free_;
};

}  // namespace sluice
