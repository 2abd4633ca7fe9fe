#pragma once
// Support for the integration tests: every test starts the real `sluice` binary (SLUICE_BINARY)
// and talks to it over 127.0.0.1 with plain blocking sockets.
//
// Rules the helpers follow so that a failing test never hangs or leaves a process behind:
// - every blocking call has a timeout (sockets get SO_RCVTIMEO/SO_SNDTIMEO, waits poll with a
//   deadline);
// - a Process is SIGKILLed and reaped by its destructor, and also gets PR_SET_PDEATHSIG so it dies
//   with the test process (spawn processes from the test's main thread: the death signal follows
//   the thread that forked);
// - every socket is close-on-exec, and a child closes every inherited descriptor above stderr.
// Helpers report failures by throwing std::runtime_error; Boost.Test turns that into a failed test
// with the message (which, for a sluice that did not start, includes its log).
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace it {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

#ifdef SLUICE_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// A generous default for waits that should take milliseconds: room for a loaded 2-core machine
// and for ASan+UBSan, which make sluice several times slower.
inline constexpr Millis kWait = 30s;

std::string binary();           // SLUICE_BINARY
std::string test_plugin_dir();  // SLUICE_TEST_PLUGIN_DIR ("" if the build has none)

// ---------------------------------------------------------------------------------------------
// Files

// A fresh directory (mkdtemp) removed with everything in it at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path file(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& file, std::string_view content);
std::string read_file(const std::filesystem::path& file);                // "" if missing
std::vector<std::string> read_lines(const std::filesystem::path& file);  // complete lines only

inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Writes `config` as pretty JSON to `file` (atomically); returns `file`.
std::filesystem::path write_json(const std::filesystem::path& file, const nlohmann::json& config);

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& condition, Millis timeout);

// ---------------------------------------------------------------------------------------------
// Processes

// A child process whose stdout and stderr go to `log_file`.
class Process {
 public:
  Process(std::vector<std::string> argv, std::filesystem::path log_file);
  ~Process();  // SIGKILL if still running, then reap
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::filesystem::path& log_file() const { return log_file_; }
  std::string log() const { return read_file(log_file_); }
  // How many times `needle` occurs in the log so far.
  std::size_t log_count(std::string_view needle) const;
  // Waits until the log holds `needle` at least `count` times. Gives up early (false) if the
  // process exits without having written it.
  bool wait_for_log(std::string_view needle, Millis timeout, std::size_t count = 1);

  void send_signal(int sig);
  bool running();
  // The exit status (a signal N is reported as 128 + N), or nullopt if still running at timeout.
  std::optional<int> wait_exit(Millis timeout);
  // Resident set size from /proc/PID/status (VmRSS), in KiB; -1 if unavailable.
  long rss_kib() const;

 private:
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_file_;
};

struct CommandResult {
  int exit_code = -1;  // -1: timed out (and killed)
  std::string output;  // stdout and stderr, interleaved
};
// Runs `sluice <args...>` to completion.
CommandResult run_sluice(const std::vector<std::string>& args, Millis timeout = kWait);
// Runs any program (argv[0] is the path) to completion.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = kWait);

// A running `sluice <args...>` with its own TempDir for the log.
class Sluice {
 public:
  explicit Sluice(std::vector<std::string> args);
  // `sluice run -c <config> [extra...]`, then waits for "sluice ready:" (throws with the log if
  // it does not come).
  static std::unique_ptr<Sluice> run_config(const std::filesystem::path& config,
                                            std::vector<std::string> extra = {});
  // Waits for "sluice ready:"; throws with the log if it does not come.
  void expect_ready(Millis timeout = kWait);

  Process& process() { return *process_; }
  std::string log() const { return process_->log(); }
  bool wait_for_log(std::string_view needle, Millis timeout = kWait, std::size_t count = 1) {
    return process_->wait_for_log(needle, timeout, count);
  }
  void send_signal(int sig) { process_->send_signal(sig); }
  std::optional<int> wait_exit(Millis timeout = kWait) { return process_->wait_exit(timeout); }
  long rss_kib() const { return process_->rss_kib(); }
  bool running() { return process_->running(); }
  // SIGTERM, then waits for the exit; returns the exit status, or -1 if it did not exit in time
  // (it is then killed). Call with no channel open, or the drain timeout applies.
  int stop(Millis timeout = kWait);

 private:
  TempDir dir_;
  std::unique_ptr<Process> process_;
};

// ---------------------------------------------------------------------------------------------
// Sockets

// A port that was free a moment ago (bind 127.0.0.1:0, read it, close).
std::uint16_t free_port();
std::string loopback(std::uint16_t port);  // "127.0.0.1:PORT"
// Whether some socket listens on 127.0.0.1:port (or the wildcard), from /proc/net/tcp: a readiness
// probe that does not open a connection (which sluice would count as a channel).
bool port_listening(std::uint16_t port);
// Whether 127.0.0.1:port can be bound right now (with SO_REUSEADDR, as sluice does).
bool port_bindable(std::uint16_t port);

// A listening socket on 127.0.0.1:port that keeps the port busy (no SO_REUSEPORT).
class PortHolder {
 public:
  PortHolder();  // on a free port
  ~PortHolder();
  PortHolder(const PortHolder&) = delete;
  PortHolder& operator=(const PortHolder&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// How a read ended.
enum class End { data, eof, reset, timeout, error };
const char* to_string(End e);

// A blocking TCP socket with send and receive timeouts.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd, Millis timeout = kWait);
  ~Socket();
  Socket(Socket&& o) noexcept;
  Socket& operator=(Socket&& o) noexcept;

  // Connects to 127.0.0.1:port within `timeout`; throws on failure.
  static Socket connect(std::uint16_t port, Millis timeout = kWait);
  // Same, but returns nullopt and sets `error` (errno) on failure.
  static std::optional<Socket> try_connect(std::uint16_t port, int& error, Millis timeout = kWait);

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  void set_timeout(Millis timeout);
  void close();
  void shutdown_write();
  std::string local_address() const;  // "127.0.0.1:PORT"

  // Sends everything; false on error or timeout (errno in last_error()).
  bool send_all(std::string_view data);
  // One recv into buf; on End::data, n is the byte count.
  End recv_some(char* buf, std::size_t cap, std::size_t& n);
  // Reads exactly n bytes, or fewer if the stream ends first (then `end` says how).
  std::string recv_exact(std::size_t n, End* end = nullptr);
  // Reads until the stream ends (EOF, reset, timeout or error) or `max` bytes; appends to out.
  End recv_to_end(std::string& out, std::size_t max = SIZE_MAX);
  int last_error() const { return last_error_; }

 private:
  int fd_ = -1;
  int last_error_ = 0;
};

// A TCP server on 127.0.0.1:<free port> that runs `handler` for every accepted connection on a
// thread of its own. The destructor stops accepting, shuts down every open connection (which
// unblocks the handlers) and joins everything. A handler's exception is recorded in errors().
class Server {
 public:
  using Handler = std::function<void(Socket&)>;
  explicit Server(Handler handler, Millis socket_timeout = 120s);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const { return port_; }
  std::string address() const { return loopback(port_); }
  std::size_t accepted() const { return accepted_.load(); }
  std::size_t finished() const { return finished_.load(); }
  bool wait_finished(std::size_t n, Millis timeout = kWait) const;
  std::vector<std::string> errors() const;

 private:
  struct Connection {
    int fd;
    bool closed = false;
    std::thread thread;
  };
  void accept_loop();
  void serve(Connection* c);

  Handler handler_;
  Millis socket_timeout_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> finished_{0};
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::string> errors_;
  std::thread acceptor_;
};

// Sends `data` and reads back exactly as many bytes (for echo peers); throws if the stream ends.
std::string roundtrip(Socket& s, std::string_view data);

// An echo server: echoes until EOF, then shuts down its write side and closes.
std::unique_ptr<Server> echo_server();
// The echo loop on one connection (for scripted servers that echo part of the time).
void echo_until_eof(Socket& s);

// ---------------------------------------------------------------------------------------------
// Data

// n random bytes from a seeded PRNG.
std::string random_bytes(std::size_t n, std::uint64_t seed);
// A deterministic, counter-based stream: byte i of stream `seed` depends on (seed, i) only, so
// any range can be generated (or checked) without storing the stream.
void pattern_fill(std::uint64_t seed, std::uint64_t offset, char* out, std::size_t n);
// Offset of the first byte of `data` that differs from the stream at `offset`, or npos.
std::size_t pattern_mismatch(std::uint64_t seed, std::uint64_t offset, std::string_view data);

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex();  // finishes; call once

 private:
  void* ctx_;
};

// Reads `s` until the stream ends, hashing what came into `h`; adds the byte count to `bytes`
// and returns how the stream ended.
End hash_to_end(Socket& s, Sha256& h, std::size_t& bytes);

// What one echo_transfer saw.
struct EchoTransfer {
  std::string sent_sha, received_sha;
  std::size_t sent = 0, received = 0;
  End end = End::data;
  std::string error;  // "" unless a send, a connect or the reader failed
};
// One channel through an echo upstream: a writer thread sends `bytes` of pattern_fill(seed)
// in pieces of varying size, then half-closes, while this thread reads the echo until the
// stream ends. Byte integrity holds when received == sent and the two SHA-256 agree.
// With `read_after` valid, the reading starts only once it is ready (or after 120 s): the echo
// then backs up until every buffer on the way is full and the writer stalls.
EchoTransfer echo_transfer(std::uint16_t port, std::size_t bytes, std::uint64_t seed,
                           std::shared_future<void> read_after = {});
// "" when `r` sent `bytes` and got every one back unchanged up to EOF; otherwise what differs.
std::string echo_problem(const EchoTransfer& r, std::size_t bytes);

// Calls `inspect(fd, link)` with a duplicate, taken with pidfd_getfd(2), of every descriptor of
// process `pid` whose /proc/PID/fd link starts with `kind` ("socket:", "pipe:"), until it returns
// true. The duplicate is closed after the call. Throws if the process cannot be opened.
void inspect_fds(pid_t pid, std::string_view kind,
                 const std::function<bool(int fd, const std::string& link)>& inspect);

std::string sha256_hex(std::string_view data);

}  // namespace it
