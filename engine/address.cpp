#include "address.hpp"

#include <cctype>
#include <charconv>
#include <stdexcept>

namespace sluice {

namespace {
const char* const kExpected =
    "expected HOST:PORT, e.g. \"127.0.0.1:7000\", \"[::1]:7000\" or \"example.org:443\"";

[[noreturn]] void bad(std::string_view text, std::string_view why) {
  throw std::invalid_argument(std::string(kExpected) + ", got \"" + std::string(text) + "\"" +
                              (why.empty() ? "" : " (" + std::string(why) + ")"));
}
}  // namespace

std::string HostPort::str() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

HostPort parse_host_port(std::string_view text) {
  HostPort out;
  std::string_view host, port;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      bad(text, "unterminated [IPv6]");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) bad(text, "no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) bad(text, "put an IPv6 address in brackets");
  }
  if (host.empty()) bad(text, "no host");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || port.empty() || value > 65535)
    bad(text, "port must be 0 to 65535");
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(value);
  boost::system::error_code bad_ip;
  auto ip = boost::asio::ip::make_address(out.host, bad_ip);
  if (!bad_ip) {
    out.endpoint = boost::asio::ip::tcp::endpoint(ip, out.port);
  } else {
    for (char c : out.host)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
        bad(text, "not an IP address or host name");
  }
  return out;
}

boost::asio::ip::tcp::endpoint parse_ip_port(std::string_view text) {
  HostPort hp = parse_host_port(text);
  if (!hp.endpoint) bad(text, "a listen address must be an IP address");
  return *hp.endpoint;
}

std::string to_string(const boost::asio::ip::tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6() && !addr.to_v6().is_v4_mapped()) {
    // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict) on the chained operator+.
    std::string s = "[";
    s += addr.to_string();
    s += "]:";
    s += std::to_string(ep.port());
    return s;
  }
  if (addr.is_v6())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6()).to_string() +
           ":" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

}  // namespace sluice
