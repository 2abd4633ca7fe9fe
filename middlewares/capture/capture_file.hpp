#pragma once
// CaptureFile: a pcap file (pcap.hpp's format) that whole records are appended to, from any
// number of threads. Records are buffered and written out when 256 KiB are waiting, on flush(),
// and when the object is destroyed.
//
// Rotation, with max_bytes > 0 (given with each append: writers of one shared file may come from
// configs with different limits, each measured against its own): a record that would make the
// current file longer than max_bytes goes to a new file instead (each file holds at least one
// record, so with max_bytes >= 64 KiB no file is longer than the largest limit of the writers
// that wrote into it). The files are `path` itself, then `<stem>_000001<ext>`,
// `<stem>_000002<ext>`, ... in the same folder (capture.pcap, capture_000001.pcap, ...), each
// number the first after the previous one that names no existing file. Append mode opens the
// newest of them (the highest number, or `path`; `path` too if the folder cannot be listed, see
// unlisted_folder()), so a restart never overwrites a capture and `ls` lists the files in the
// order they were written, across restarts too.
//
// Errors: the first failure to open or write is returned, once, by the call that met it, for the
// caller to log; from then on the object takes nothing. A write that failed half-way is cut off
// again, so the file still ends with a whole record.
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::capture {

class CaptureFile {
 public:
  enum class Mode {
    append,  // to the newest file of the capture at `path` (same file header), or a new one
    create,  // a new file; fails if `path` exists
  };
  // Opens `path` and writes the file header if the file is new. Throws std::runtime_error with a
  // message like `cannot open "x.pcap": Permission denied`; a failed open is a std::system_error
  // (std::errc::file_exists: in create mode, `path` exists).
  CaptureFile(std::filesystem::path path, Mode mode);
  ~CaptureFile();
  CaptureFile(const CaptureFile&) = delete;
  CaptureFile& operator=(const CaptureFile&) = delete;

  // Appends whole pcap records (record headers included), rotating at `max_bytes` (0: never).
  // Returns the error to log, once.
  std::optional<std::string> append(std::string_view records, std::uint64_t max_bytes);
  // Writes out what is buffered. Returns the error to log, once.
  std::optional<std::string> flush();

  // Bytes cut off the end of an existing capture when it was opened for appending: a partial
  // last record (a sluice killed while writing it). 0 normally.
  std::uint64_t cut_on_open() const { return cut_on_open_; }
  // Why the folder could not be listed for the newest rotated file when opened for appending;
  // empty normally.
  const std::string& unlisted_folder() const { return unlisted_folder_; }

  bool failed() const;
  // The file being written now (`path`, or the latest rotated file).
  std::filesystem::path current_path() const;

  // Why `path` could not be opened in append mode (output_path::append_problem, or a file that
  // is not such a capture), found without changing anything; nothing if it could.
  static std::optional<std::string> append_problem(const std::filesystem::path& path);

  // `<stem>_NNNNNN<ext>` next to `path`.
  static std::filesystem::path rotated_path(const std::filesystem::path& path, unsigned n);

 private:
  // The caller holds mutex_ and has checked failed_.
  std::optional<std::string> write_out();
  std::optional<std::string> rotate();
  std::optional<std::string> fail(std::string message);
  void close_fd();

  mutable std::mutex mutex_;
  std::filesystem::path first_path_;
  std::filesystem::path current_path_;
  int fd_ = -1;
  std::uint64_t on_disk_ = 0;  // bytes of the current file written so far
  std::uint64_t cut_on_open_ = 0;
  std::string unlisted_folder_;
  std::string buffer_;      // records not yet written to the current file
  unsigned rotations_ = 0;  // the number of the current file (0: `path`)
  bool failed_ = false;     // reported by the call that set it; nothing is written after it
};

}  // namespace sluice::capture
