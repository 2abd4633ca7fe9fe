#pragma once
// Checks for the paths a middleware writes to (capture, record, access-log, yours). A maker only
// checks: `sluice check`, and a config that a later key or a reload rejects, must leave no file
// behind. MiddlewareFactory::start() then creates, with the functions at the end. The checks create
// and change nothing; each returns why the path cannot be used, in the words the creating call
// would use, or nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace sluice::output_path {

namespace detail {

inline std::string quoted(const std::filesystem::path& p) {
  return "\"" + p.string() + "\"";
}
inline std::string error_text(int err) {
  return std::system_category().message(err);
}

// Whether a file could be created in the existing `folder`: an unnamed file leaves no trace and,
// unlike access(), tells the truth for root too (a read-only mount, an immutable folder).
inline int create_error(const std::filesystem::path& folder) {
  const int fd = ::open(folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return 0;
  }
  const int err = errno;
  // File systems without O_TMPFILE.
  if (err == EOPNOTSUPP || err == EISDIR) return ::access(folder.c_str(), W_OK | X_OK) ? errno : 0;
  return err;
}

inline std::filesystem::path parent_or_dot(const std::filesystem::path& p) {
  const auto parent = p.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace detail

// Whether `path` names a folder of per-file outputs: it ends in '/' or is a directory already.
inline bool names_folder(const std::string& path) {
  std::error_code ec;
  return !path.empty() && (path.back() == '/' || std::filesystem::is_directory(path, ec));
}

// Why a file at `path` could not be opened for appending (created if missing).
inline std::optional<std::string> append_problem(const std::filesystem::path& path) {
  using detail::quoted;
  int err = 0;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A FIFO, a device: opening it could block, or be seen by its reader. Ask instead.
    if (S_ISDIR(st.st_mode))
      err = EISDIR;
    else if (::access(path.c_str(), W_OK) != 0)
      err = errno;
  } else {
    // No O_CREAT, no O_TRUNC: opening an existing file for writing changes nothing. O_APPEND, or
    // an append-only file (chattr +a) refuses the open.
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0)
      ::close(fd);
    else if (errno == ENOENT) {
      // Missing: its folder must exist (nothing makes it) and take a new file.
      const auto folder = detail::parent_or_dot(path);
      std::error_code ec;
      err = std::filesystem::is_directory(folder, ec) ? detail::create_error(folder) : ENOENT;
    } else if (errno != EWOULDBLOCK)  // a lease another process holds: usable once it ends
      err = errno;
  }
  if (err == 0) return std::nullopt;
  return "cannot open " + quoted(path) + " for appending: " + detail::error_text(err);
}

// Why files could not be created in `folder`, which start() creates with its missing parents.
inline std::optional<std::string> folder_problem(const std::filesystem::path& folder) {
  using detail::quoted;
  std::error_code ec;
  // The nearest folder that exists decides: the missing ones are made there.
  const auto wanted = std::filesystem::absolute(folder, ec).lexically_normal();
  auto existing = wanted.has_filename() ? wanted : wanted.parent_path();  // "a/b/" names "a/b"
  const auto target = existing;
  for (;;) {
    const bool found = std::filesystem::exists(existing, ec);
    if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
      return "cannot create the folder " + quoted(folder) + ": " + ec.message();
    if (found || existing == existing.parent_path()) break;
    existing = existing.parent_path();
  }
  if (!std::filesystem::is_directory(existing, ec))
    return "cannot create the folder " + quoted(folder) + ": " + detail::error_text(ENOTDIR);
  if (const int err = detail::create_error(existing))
    return (existing == target ? "cannot create files in the folder "
                               : "cannot create the folder ") +
           quoted(folder) + ": " + detail::error_text(err);
  return std::nullopt;
}

// start()'s side of append_problem: opens `path` for appending, created 0644 if missing. Throws
// std::runtime_error in append_problem's words (the file system may have changed since).
inline int open_for_appending(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error("cannot open " + detail::quoted(path) +
                             " for appending: " + detail::error_text(errno));
  return fd;
}

// start()'s side of folder_problem: creates `folder` and its missing parents.
inline void create_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec)
    throw std::runtime_error("cannot create the folder " + detail::quoted(folder) + ": " +
                             ec.message());
}

}  // namespace sluice::output_path
