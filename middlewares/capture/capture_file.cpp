#include "capture/capture_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <stdexcept>
#include <system_error>

#include "capture/pcap.hpp"
#include "sluice/output_path.hpp"

namespace sluice::capture {
namespace {

constexpr std::size_t kWriteThreshold = 256 * 1024;
// A buffer grown past this is given back once written: a folder holds one file per open channel.
constexpr std::size_t kKeptBuffer = 64 * 1024;

std::string quoted(const std::filesystem::path& p) {
  return "\"" + p.string() + "\"";
}
std::string errno_text(int err) {
  return std::system_category().message(err);
}

// Writes all of `bytes`; 0 or the errno of the failure.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

std::uint32_t le32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}

// Where the last whole record of an existing capture ends: records follow the file header, each
// a 16-byte header whose third field is the length kept. One that runs past the end of the file
// (a sluice killed while writing) or claims more than the file's snaplen (garbage) ends the walk.
std::uint64_t whole_records_end(int fd, std::uint64_t from, std::uint64_t size) {
  std::uint64_t at = from;
  char header[16];
  while (at + sizeof header <= size) {
    if (::pread(fd, header, sizeof header, static_cast<off_t>(at)) !=
        static_cast<ssize_t>(sizeof header))
      break;
    const std::uint32_t kept = le32({header, sizeof header}, 8);
    if (kept > kFileSnaplen || at + sizeof header + kept > size) break;
    at += sizeof header + kept;
  }
  return at;
}

// Whether the file open at `fd`, not empty, starts with the header this capture writes.
bool has_our_header(int fd, const struct stat& st) {
  const std::string header = file_header();
  std::string existing(header.size(), '\0');
  const ssize_t n = ::pread(fd, existing.data(), existing.size(), 0);
  return S_ISREG(st.st_mode) && n == static_cast<ssize_t>(existing.size()) && existing == header;
}

std::string not_ours(const std::filesystem::path& path) {
  return quoted(path) +
         " exists and is not a capture of this kind (pcap, microsecond timestamps, Ethernet): move "
         "it away or pick another path";
}

// The number of the newest file of the capture at `path`: the highest N whose rotated file
// exists, 0 for `path` itself. A restart appends there, so rotation goes on after it. A folder
// that can be written to but not listed (a drop box) hides them: then 0, and `unlisted` says why.
// Nothing is lost by that: rotation skips the numbers that exist.
unsigned newest_rotation(const std::filesystem::path& path, std::string* unlisted = nullptr) {
  const std::string prefix = path.stem().string() + "_", ext = path.extension().string();
  const auto folder = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  unsigned newest = 0;
  std::error_code ec;
  std::filesystem::directory_iterator it(folder, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() + ext.size() || !name.starts_with(prefix) ||
        !name.ends_with(ext))
      continue;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size() - ext.size();
    unsigned n = 0;
    const auto [at, error] = std::from_chars(first, last, n);
    // Only the names rotation writes ("_000001", not "_1" or "_+1").
    if (error == std::errc() && at == last && n > newest &&
        CaptureFile::rotated_path(path, n).filename() == name)
      newest = n;
  }
  // A missing folder holds no rotated file (output_path::append_problem reports it). An error
  // part-way through may have hidden the newest file as well as one on opening.
  if (ec && ec != std::errc::no_such_file_or_directory && unlisted)
    *unlisted = "cannot list " + quoted(folder) + ": " + ec.message() + "; appending to " +
                quoted(newest ? CaptureFile::rotated_path(path, newest) : path) +
                ", which may not be the newest file of this capture";
  return newest;
}

std::filesystem::path newest_file(const std::filesystem::path& path) {
  const unsigned n = newest_rotation(path);
  return n ? CaptureFile::rotated_path(path, n) : path;
}

}  // namespace

std::optional<std::string> CaptureFile::append_problem(const std::filesystem::path& first) {
  const auto path = newest_file(first);
  if (auto problem = output_path::append_problem(path)) return problem;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;  // made at start
    return "cannot open " + quoted(path) + ": " + errno_text(errno);
  }
  struct stat st {};
  const bool ours = ::fstat(fd, &st) == 0 && (st.st_size == 0 || has_our_header(fd, st));
  ::close(fd);
  if (!ours) return not_ours(path);
  return std::nullopt;
}

std::filesystem::path CaptureFile::rotated_path(const std::filesystem::path& path, unsigned n) {
  char number[16];
  std::snprintf(number, sizeof number, "_%06u", n);
  return path.parent_path() / (path.stem().string() + number + path.extension().string());
}

CaptureFile::CaptureFile(std::filesystem::path path, Mode mode)
    : first_path_(path), current_path_(std::move(path)) {
  if (mode == Mode::append) {
    rotations_ = newest_rotation(first_path_, &unlisted_folder_);
    if (rotations_) current_path_ = rotated_path(first_path_, rotations_);
  }
  const int flags = mode == Mode::append ? O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC
                                         : O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  fd_ = ::open(current_path_.c_str(), flags, 0644);
  if (fd_ < 0)
    throw std::system_error(errno, std::system_category(), "cannot open " + quoted(current_path_));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    close_fd();
    throw std::runtime_error("cannot open " + quoted(current_path_) + ": " + errno_text(err));
  }
  const std::string header = file_header();
  if (st.st_size > 0) {
    if (!has_our_header(fd_, st)) {
      close_fd();
      throw std::runtime_error(not_ours(current_path_));
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    on_disk_ = whole_records_end(fd_, header.size(), size);
    // Appending after a partial record would misalign every record after it.
    if (on_disk_ < size && ::ftruncate(fd_, static_cast<off_t>(on_disk_)) != 0) {
      const int err = errno;
      close_fd();
      throw std::runtime_error("cannot cut the partial last record off " + quoted(current_path_) +
                               ": " + errno_text(err));
    }
    cut_on_open_ = size - on_disk_;
    return;
  }
  if (const int err = write_all(fd_, header)) {
    close_fd();
    throw std::runtime_error("cannot write to " + quoted(current_path_) + ": " + errno_text(err));
  }
  on_disk_ = header.size();
}

CaptureFile::~CaptureFile() {
  std::lock_guard lock(mutex_);
  if (!failed_) write_out();
  close_fd();
}

void CaptureFile::close_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::optional<std::string> CaptureFile::append(std::string_view records, std::uint64_t max_bytes) {
  std::lock_guard lock(mutex_);
  if (failed_) return std::nullopt;
  if (max_bytes == 0) {
    buffer_ += records;
  } else {
    while (records.size() >= kRecordHeaderSize) {
      const std::size_t size = kRecordHeaderSize + le32(records, 8);
      const std::uint64_t length = on_disk_ + buffer_.size();
      if (length > kFileHeaderSize && length + size > max_bytes) {
        if (auto error = rotate()) return error;
      }
      buffer_ += records.substr(0, size);
      records.remove_prefix(std::min(size, records.size()));
    }
  }
  if (buffer_.size() >= kWriteThreshold) return write_out();
  return std::nullopt;
}

std::optional<std::string> CaptureFile::flush() {
  std::lock_guard lock(mutex_);
  if (failed_) return std::nullopt;
  return write_out();
}

bool CaptureFile::failed() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

std::filesystem::path CaptureFile::current_path() const {
  std::lock_guard lock(mutex_);
  return current_path_;
}

std::optional<std::string> CaptureFile::write_out() {
  if (buffer_.empty() || fd_ < 0) return std::nullopt;
  if (const int err = write_all(fd_, buffer_)) {
    // Whatever part of the buffer went out ends in a partial record: cut it off.
    if (::ftruncate(fd_, static_cast<off_t>(on_disk_)) != 0) {
      // Nothing more to do: the error below is what gets reported.
    }
    return fail("capture file " + quoted(current_path_) + ": write failed: " + errno_text(err) +
                "; capturing into it stops");
  }
  on_disk_ += buffer_.size();
  if (buffer_.capacity() > kKeptBuffer)
    std::string().swap(buffer_);
  else
    buffer_.clear();
  return std::nullopt;
}

std::optional<std::string> CaptureFile::rotate() {
  if (auto error = write_out()) return error;
  close_fd();
  for (;;) {
    const std::filesystem::path next = rotated_path(first_path_, ++rotations_);
    fd_ = ::open(next.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno == EEXIST) continue;
    if (fd_ < 0)
      return fail("capture file " + quoted(next) + ": cannot open: " + errno_text(errno) +
                  "; capturing into it stops");
    current_path_ = next;
    on_disk_ = 0;
    buffer_ = file_header();
    return std::nullopt;
  }
}

std::optional<std::string> CaptureFile::fail(std::string message) {
  failed_ = true;
  buffer_.clear();
  buffer_.shrink_to_fit();
  close_fd();
  return message;
}

}  // namespace sluice::capture
