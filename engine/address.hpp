#pragma once
// "host:port" as written in configs and by middlewares: IPv4 "127.0.0.1:80", IPv6 "[::1]:80",
// or a host name "db.local:5432" (upstreams only; resolved at connect time).
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct HostPort {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  // Set when host is an IP literal, so no resolver is needed.
  std::optional<boost::asio::ip::tcp::endpoint> endpoint;

  std::string str() const;
};

// Throws std::invalid_argument with a message that says what was expected.
HostPort parse_host_port(std::string_view text);
// The same, but the host must be an IP literal (for listen addresses).
boost::asio::ip::tcp::endpoint parse_ip_port(std::string_view text);
std::string to_string(const boost::asio::ip::tcp::endpoint& ep);

}  // namespace sluice
