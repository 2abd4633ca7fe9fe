#pragma once
// Sets a boolean IPPROTO_TCP option (TCP_NODELAY, TCP_INQ) on a socket. False, with errno set,
// when the kernel refuses it: the caller decides whether that is an error or a lost hint.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace sluice {

inline bool set_tcp_flag(int fd, int option, bool on) {
  const int value = on;
  return ::setsockopt(fd, IPPROTO_TCP, option, &value, sizeof value) == 0;
}

}  // namespace sluice
