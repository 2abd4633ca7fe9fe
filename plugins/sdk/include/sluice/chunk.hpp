#pragma once
// Chunk: bytes of one direction of a stream, owned by the engine and lent to a middleware for the
// duration of one on_data call. The middleware may read it, rewrite it in place, shrink it or grow
// it; what is left in it when on_data returns `pass` goes on to the next middleware. A middleware
// that wants to keep bytes past the call copies them: the reference is invalid after return.
// Growing past capacity allocates; shrinking and same-size rewrites never do.
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace sluice {

class Chunk {
 public:
  Chunk() = default;
  explicit Chunk(std::size_t capacity) : storage_(new char[capacity]), capacity_(capacity) {}
  explicit Chunk(std::string_view bytes) : Chunk(bytes.size()) { assign(bytes); }

  char* data() { return storage_.get(); }
  const char* data() const { return storage_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {storage_.get(), size_}; }
  std::span<char> bytes() { return {storage_.get(), size_}; }

  // Sets the size; bytes past the old size are unspecified until written.
  void resize(std::size_t n) {
    reserve(n);
    size_ = n;
  }
  void clear() { size_ = 0; }
  void assign(std::string_view s) {
    reserve(s.size());
    if (!s.empty()) std::memmove(storage_.get(), s.data(), s.size());
    size_ = s.size();
  }
  void append(std::string_view s) { splice(size_, 0, s); }
  // Replaces `count` bytes at `pos` with `with` (an erase, an insert or both).
  void splice(std::size_t pos, std::size_t count, std::string_view with) {
    const std::size_t tail = size_ - pos - count;
    const std::size_t n = size_ - count + with.size();
    reserve(n);
    char* p = storage_.get();
    std::memmove(p + pos + with.size(), p + pos + count, tail);
    if (!with.empty()) std::memcpy(p + pos, with.data(), with.size());
    size_ = n;
  }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::size_t cap = capacity_ ? capacity_ : 64;
    while (cap < n) cap *= 2;
    std::unique_ptr<char[]> grown(new char[cap]);
    if (size_) std::memcpy(grown.get(), storage_.get(), size_);
    storage_ = std::move(grown);
    capacity_ = cap;
  }

 private:
  std::unique_ptr<char[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

}  // namespace sluice
