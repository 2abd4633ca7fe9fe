// LD_PRELOAD shim for it_accept_errors: the first connections that accept4(2) takes are reset at
// once and reported as the errors listed, in order, in SLUICE_FAULT_ACCEPT4 ("ECONNABORTED,EPERM"),
// the way Linux reports a queued client that was lost (accept(2), ERRORS). Then it passes through.
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <vector>

namespace {

int errno_named(std::string_view name) {
  static constexpr struct {
    std::string_view name;
    int value;
  } known[] = {{"ECONNABORTED", ECONNABORTED},
               {"EPERM", EPERM},
               {"EPROTO", EPROTO},
               {"ENETUNREACH", ENETUNREACH},
               {"EHOSTUNREACH", EHOSTUNREACH},
               {"ENOBUFS", ENOBUFS}};
  for (const auto& k : known)
    if (k.name == name) return k.value;
  return EINVAL;  // a typo shows up as an error sluice does not expect
}

const std::vector<int>& planned() {
  static std::vector<int> errors;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* list = std::getenv("SLUICE_FAULT_ACCEPT4");
    std::string_view rest = list ? list : "";
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      errors.push_back(errno_named(rest.substr(0, comma)));
      rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    }
  });
  return errors;
}

std::atomic<std::size_t> used{0};

}  // namespace

extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  using Real = int (*)(int, sockaddr*, socklen_t*, int);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "accept4"));
  const int accepted = real(fd, addr, len, flags);
  if (accepted < 0) return accepted;
  const std::size_t n = used.fetch_add(1);
  if (n >= planned().size()) return accepted;
  const linger reset{1, 0};  // the client sees a reset, as for a connection lost while queued
  ::setsockopt(accepted, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(accepted);
  errno = planned()[n];
  return -1;
}
