#include "support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#ifndef SLUICE_BINARY
#error "SLUICE_BINARY must be defined (the path of the sluice executable)"
#endif
#ifndef SLUICE_TEST_PLUGIN_DIR
#define SLUICE_TEST_PLUGIN_DIR ""
#endif

namespace it {

namespace {

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_in loopback_addr(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) fail_errno("getsockname");
  return ntohs(a.sin_port);
}

void set_timeouts(int fd, Millis timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

std::string binary() {
  return SLUICE_BINARY;
}
std::string test_plugin_dir() {
  return SLUICE_TEST_PLUGIN_DIR;
}

// ---------------------------------------------------------------------------------------------
// Files

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sluice-it-XXXXXX";
  if (!::mkdtemp(tmpl.data())) fail_errno("mkdtemp " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_file(const std::filesystem::path& file, std::string_view content) {
  // Write a sibling and rename it into place, so a reader (sluice on SIGHUP) never sees half.
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, file);
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> read_lines(const std::filesystem::path& file) {
  const std::string text = read_file(file);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

std::filesystem::path write_json(const std::filesystem::path& file, const nlohmann::json& config) {
  write_file(file, config.dump(2) + "\n");
  return file;
}

bool wait_until(const std::function<bool()>& condition, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(10ms);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

Process::Process(std::vector<std::string> argv, std::filesystem::path log_file)
    : log_file_(std::move(log_file)) {
  if (argv.empty()) throw std::invalid_argument("Process: empty argv");
  const int log_fd =
      ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) fail_errno("open " + log_file_.string());
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    fail_errno("fork");
  }
  if (pid == 0) {
    // Dies with the test even if the test process is killed before its destructors run.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGHUP, SIGINT, SIGCHLD}) ::signal(sig, SIG_DFL);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // No inherited socket may keep a test's connection (or port) alive in the child.
    if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
      for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    ::execv(args[0], args.data());
    static const char msg[] = "integration test: execv failed\n";
    [[maybe_unused]] auto w = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  pid_ = pid;
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

bool Process::reap(bool block) {
  if (status_) return true;
  int st = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
    if (r == pid_) break;
    if (r == 0) return false;
    if (r < 0 && errno == EINTR) continue;
    status_ = -1;  // ECHILD: someone else reaped it
    return true;
  }
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
  return true;
}

std::size_t Process::log_count(std::string_view needle) const {
  const std::string text = log();
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size()))
    ++n;
  return n;
}

bool Process::wait_for_log(std::string_view needle, Millis timeout, std::size_t count) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (log_count(needle) >= count) return true;
    if (!running()) return log_count(needle) >= count;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

void Process::send_signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

bool Process::running() {
  return !reap(false);
}

std::optional<int> Process::wait_exit(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (reap(false)) return status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

long Process::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

CommandResult run_command(const std::vector<std::string>& argv, Millis timeout) {
  TempDir dir;
  Process p(argv, dir.file("output.log"));
  CommandResult r;
  if (auto status = p.wait_exit(timeout)) {
    r.exit_code = *status;
  } else {
    p.send_signal(SIGKILL);
    p.wait_exit(kWait);
    r.exit_code = -1;
  }
  r.output = p.log();
  return r;
}

CommandResult run_sluice(const std::vector<std::string>& args, Millis timeout) {
  std::vector<std::string> argv{binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout);
}

Sluice::Sluice(std::vector<std::string> args) {
  args.insert(args.begin(), binary());
  process_ = std::make_unique<Process>(std::move(args), dir_.file("sluice.log"));
}

std::unique_ptr<Sluice> Sluice::run_config(const std::filesystem::path& config,
                                           std::vector<std::string> extra) {
  std::vector<std::string> args{"run", "-c", config.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  auto s = std::make_unique<Sluice>(std::move(args));
  s->expect_ready();
  return s;
}

int Sluice::stop(Millis timeout) {
  process_->send_signal(SIGTERM);
  if (auto status = process_->wait_exit(timeout)) return *status;
  process_->send_signal(SIGKILL);
  process_->wait_exit(kWait);
  return -1;
}

void Sluice::expect_ready(Millis timeout) {
  if (wait_for_log("sluice ready:", timeout)) return;
  const auto status = process_->wait_exit(0ms);
  throw std::runtime_error(
      "sluice did not print \"sluice ready:\" within " + std::to_string(timeout.count()) + " ms (" +
      (status ? "exit status " + std::to_string(*status) : std::string("still running")) +
      "); its log:\n" + log());
}

// ---------------------------------------------------------------------------------------------
// Sockets

std::uint16_t free_port() {
  // The kernel readily hands the same port to consecutive bind(0)s once it is closed again, so
  // remember what this process handed out: two listeners of one config must not get one port.
  static std::mutex mutex;
  static std::set<std::uint16_t> given;
  std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_errno("socket");
    auto a = loopback_addr(0);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      fail_errno("bind 127.0.0.1:0");
    }
    const auto port = local_port(fd);
    ::close(fd);
    if (given.insert(port).second) return port;
  }
  throw std::runtime_error("free_port: no new free port after 1000 attempts");
}

std::string loopback(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

bool port_listening(std::uint16_t port) {
  // Lines: "sl local_address rem_address st ...", addresses as hex "0100007F:1F40", LISTEN = 0A.
  char want_lo[32], want_any[32];
  std::snprintf(want_lo, sizeof want_lo, "0100007F:%04X", port);
  std::snprintf(want_any, sizeof want_any, "00000000:%04X", port);
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string sl, local, remote, state;
    fields >> sl >> local >> remote >> state;
    if (state == "0A" && (local == want_lo || local == want_any)) return true;
  }
  return false;
}

bool port_bindable(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_errno("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto a = loopback_addr(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

PortHolder::PortHolder() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail_errno("socket");
  auto a = loopback_addr(0);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
    ::close(fd_);
    fail_errno("bind/listen 127.0.0.1:0");
  }
  port_ = local_port(fd_);
}

PortHolder::~PortHolder() {
  ::close(fd_);
}

const char* to_string(End e) {
  switch (e) {
    case End::data:
      return "data";
    case End::eof:
      return "EOF";
    case End::reset:
      return "reset";
    case End::timeout:
      return "timeout";
    case End::error:
      return "error";
  }
  return "?";
}

Socket::Socket(int fd, Millis timeout) : fd_(fd) {
  set_timeouts(fd_, timeout);
}

Socket::~Socket() {
  close();
}

Socket::Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), last_error_(o.last_error_) {}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    last_error_ = o.last_error_;
  }
  return *this;
}

std::optional<Socket> Socket::try_connect(std::uint16_t port, int& error, Millis timeout) {
  error = 0;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail_errno("socket");
  auto a = loopback_addr(port);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (ready == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    } else {
      if (ready == 0) errno = ETIMEDOUT;
      rc = -1;
    }
  }
  if (rc != 0) {
    error = errno;
    ::close(fd);
    return std::nullopt;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return Socket(fd);
}

Socket Socket::connect(std::uint16_t port, Millis timeout) {
  int error = 0;
  auto s = try_connect(port, error, timeout);
  if (!s) throw std::system_error(error, std::generic_category(), "connect " + loopback(port));
  return std::move(*s);
}

void Socket::set_timeout(Millis timeout) {
  set_timeouts(fd_, timeout);
}

void Socket::close() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void Socket::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

std::string Socket::local_address() const {
  return loopback(local_port(fd_));
}

bool Socket::send_all(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      last_error_ = errno;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

End Socket::recv_some(char* buf, std::size_t cap, std::size_t& n) {
  n = 0;
  for (;;) {
    const ssize_t r = ::recv(fd_, buf, cap, 0);
    if (r > 0) {
      n = static_cast<std::size_t>(r);
      return End::data;
    }
    if (r == 0) return End::eof;
    if (errno == EINTR) continue;
    last_error_ = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return End::timeout;
    if (errno == ECONNRESET || errno == EPIPE) return End::reset;
    return End::error;
  }
}

std::string Socket::recv_exact(std::size_t n, End* end) {
  std::string out(n, '\0');
  std::size_t have = 0;
  End e = End::data;
  while (have < n) {
    std::size_t got = 0;
    e = recv_some(out.data() + have, n - have, got);
    if (e != End::data) break;
    have += got;
  }
  out.resize(have);
  if (end) *end = e;
  return out;
}

End Socket::recv_to_end(std::string& out, std::size_t max) {
  char buf[64 * 1024];
  while (out.size() < max) {
    std::size_t got = 0;
    const End e = recv_some(buf, std::min(sizeof buf, max - out.size()), got);
    if (e != End::data) return e;
    out.append(buf, got);
  }
  return End::data;
}

// ---------------------------------------------------------------------------------------------
// Server

Server::Server(Handler handler, Millis socket_timeout)
    : handler_(std::move(handler)), socket_timeout_(socket_timeout) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail_errno("socket");
  auto a = loopback_addr(0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    ::close(listen_fd_);
    fail_errno("bind/listen 127.0.0.1:0");
  }
  port_ = local_port(listen_fd_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

Server::~Server() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  {
    std::lock_guard lock(mutex_);
    for (auto& c : connections_)
      if (!c->closed) ::shutdown(c->fd, SHUT_RDWR);  // unblocks the handler's recv/send
  }
  for (auto& c : connections_) c->thread.join();
}

void Server::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted_;
    std::lock_guard lock(mutex_);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    Connection* raw = c.get();
    connections_.push_back(std::move(c));
    raw->thread = std::thread([this, raw] { serve(raw); });
  }
}

void Server::serve(Connection* c) {
  Socket s(c->fd, socket_timeout_);
  try {
    handler_(s);
  } catch (const std::exception& e) {
    std::lock_guard lock(mutex_);
    errors_.push_back(e.what());
  }
  {
    // Closed under the lock so the destructor never shuts down a reused descriptor number.
    std::lock_guard lock(mutex_);
    s.close();
    c->closed = true;
  }
  ++finished_;
}

bool Server::wait_finished(std::size_t n, Millis timeout) const {
  return wait_until([&] { return finished_.load() >= n; }, timeout);
}

std::vector<std::string> Server::errors() const {
  std::lock_guard lock(mutex_);
  return errors_;
}

std::string roundtrip(Socket& s, std::string_view data) {
  if (!s.send_all(data))
    throw std::runtime_error("roundtrip: send failed: " +
                             std::string(std::strerror(s.last_error())));
  End end = End::data;
  std::string got = s.recv_exact(data.size(), &end);
  if (got.size() != data.size())
    throw std::runtime_error("roundtrip: got " + std::to_string(got.size()) + " of " +
                             std::to_string(data.size()) + " bytes, then " + to_string(end));
  return got;
}

void echo_until_eof(Socket& s) {
  std::string buf(64 * 1024, '\0');
  for (;;) {
    std::size_t n = 0;
    const End e = s.recv_some(buf.data(), buf.size(), n);
    if (e == End::eof) {
      s.shutdown_write();
      return;
    }
    if (e != End::data) return;
    if (!s.send_all(std::string_view(buf.data(), n))) return;
  }
}

std::unique_ptr<Server> echo_server() {
  return std::make_unique<Server>(echo_until_eof);
}

// ---------------------------------------------------------------------------------------------
// Data

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t w = rng();
    std::memcpy(out.data() + i, &w, std::min<std::size_t>(8, n - i));
  }
  return out;
}

namespace {

std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t index) {
  // splitmix64 of (seed, index)
  std::uint64_t z =
      seed * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull + 0x2545F4914F6CDD1Dull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void pattern_fill(std::uint64_t seed, std::uint64_t offset, char* out, std::size_t n) {
  static_assert(std::endian::native == std::endian::little);
  std::size_t i = 0;
  while (i < n) {
    const std::uint64_t pos = offset + i;
    const std::uint64_t w = pattern_word(seed, pos / 8);
    const unsigned b = static_cast<unsigned>(pos % 8);
    if (b == 0 && n - i >= 8) {
      std::memcpy(out + i, &w, 8);
      i += 8;
    } else {
      out[i++] = static_cast<char>(w >> (8 * b));
    }
  }
}

std::size_t pattern_mismatch(std::uint64_t seed, std::uint64_t offset, std::string_view data) {
  char expect[16 * 1024];
  for (std::size_t done = 0; done < data.size();) {
    const std::size_t n = std::min(sizeof expect, data.size() - done);
    pattern_fill(seed, offset + done, expect, n);
    if (std::memcmp(expect, data.data() + done, n) != 0)
      for (std::size_t i = 0; i < n; ++i)
        if (expect[i] != data[done + i]) return done + i;
    done += n;
  }
  return std::string_view::npos;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP sha256 init failed");
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 0xf];
  }
  return out;
}

namespace {
// Through syscall(2): glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link to it.
int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int pidfd_getfd(int pidfd, int fd) {
  return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}
}  // namespace

void inspect_fds(pid_t pid, std::string_view kind,
                 const std::function<bool(int fd, const std::string& link)>& inspect) {
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) throw std::runtime_error("pidfd_open: " + std::string(std::strerror(errno)));
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    const std::string link = std::filesystem::read_symlink(entry.path(), lec).string();
    if (lec || link.rfind(kind, 0) != 0) continue;
    const int fd = pidfd_getfd(pidfd, std::stoi(entry.path().filename().string()));
    if (fd < 0) continue;  // closed since the listing
    const bool stop = inspect(fd, link);
    ::close(fd);
    if (stop) break;
  }
  ::close(pidfd);
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

End hash_to_end(Socket& s, Sha256& h, std::size_t& bytes) {
  std::string buf(64 * 1024, '\0');
  for (;;) {
    std::size_t n = 0;
    const End end = s.recv_some(buf.data(), buf.size(), n);
    if (end != End::data) return end;
    h.update(std::string_view(buf.data(), n));
    bytes += n;
  }
}

EchoTransfer echo_transfer(std::uint16_t port, std::size_t bytes, std::uint64_t seed,
                           std::shared_future<void> read_after) {
  EchoTransfer r;
  try {
    Socket s = Socket::connect(port);
    s.set_timeout(120s);
    std::string writer_error;
    std::thread writer([&] {
      try {
        Sha256 h;
        std::string block(128 * 1024, '\0');
        std::uint64_t sizes = seed;
        while (r.sent < bytes) {
          sizes = sizes * 6364136223846793005ull + 1442695040888963407ull;
          const std::size_t n =
              std::min<std::size_t>(1 + (sizes >> 33) % block.size(), bytes - r.sent);
          pattern_fill(seed, r.sent, block.data(), n);
          const std::string_view piece(block.data(), n);
          h.update(piece);
          if (!s.send_all(piece)) {
            writer_error = "send failed after " + std::to_string(r.sent) +
                           " bytes: " + std::strerror(s.last_error());
            break;
          }
          r.sent += n;
        }
        r.sent_sha = h.hex();
        s.shutdown_write();
      } catch (const std::exception& e) {
        writer_error = e.what();
      }
    });
    if (read_after.valid()) read_after.wait_for(120s);
    Sha256 h;
    r.end = hash_to_end(s, h, r.received);
    r.received_sha = h.hex();
    writer.join();
    if (!writer_error.empty()) r.error = "writer: " + writer_error;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

std::string echo_problem(const EchoTransfer& r, std::size_t bytes) {
  if (!r.error.empty()) return r.error;
  if (r.sent != bytes) return "sent " + std::to_string(r.sent) + " of " + std::to_string(bytes);
  if (r.received != bytes)
    return "received " + std::to_string(r.received) + " of " + std::to_string(bytes);
  if (r.end != End::eof) return std::string("ended with ") + to_string(r.end) + ", not EOF";
  if (r.received_sha != r.sent_sha) return "the bytes came back changed (SHA-256)";
  return "";
}

}  // namespace it
