#include "capture/pcap.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace sluice::capture {
namespace {

void put8(std::string& out, std::uint8_t v) {
  out.push_back(static_cast<char>(v));
}
void put16be(std::string& out, std::uint16_t v) {
  put8(out, static_cast<std::uint8_t>(v >> 8));
  put8(out, static_cast<std::uint8_t>(v));
}
void put32be(std::string& out, std::uint32_t v) {
  put16be(out, static_cast<std::uint16_t>(v >> 16));
  put16be(out, static_cast<std::uint16_t>(v));
}
void put32le(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) put8(out, static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_ip(std::string& out, const Address& a) {
  out.append(reinterpret_cast<const char*>(a.ip.data()), a.v6 ? 16 : 4);
}
void set16be(std::string& s, std::size_t at, std::uint16_t v) {
  s[at] = static_cast<char>(v >> 8);
  s[at + 1] = static_cast<char>(v);
}

// Ones' complement sum of big-endian 16-bit words; pieces of odd length only last.
class Checksum {
 public:
  void add(std::string_view bytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t n = bytes.size();
    for (; n >= 2; p += 2, n -= 2) sum_ += static_cast<std::uint32_t>(p[0] << 8 | p[1]);
    if (n) sum_ += static_cast<std::uint32_t>(p[0] << 8);
  }
  std::uint16_t value() const {
    std::uint64_t s = sum_;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(~s);
  }

 private:
  std::uint64_t sum_ = 0;
};

constexpr std::uint16_t kEtherIPv4 = 0x0800, kEtherIPv6 = 0x86dd;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kTtl = 64;
// Window scale 14: the advertised 65535 means about 1 GiB, so no amount of bytes sent between two
// acknowledgements looks like a full receive window to Wireshark's TCP analysis.
constexpr std::uint8_t kWindowShift = 14;
// A side that only receives acknowledges at least this often (Wireshark would otherwise see
// bytes in flight beyond the scaled window on a long one-way transfer).
constexpr std::uint32_t kAckEvery = 256u << 20;

std::string syn_options() {
  std::string o;
  put8(o, 2);  // MSS
  put8(o, 4);
  put16be(o, static_cast<std::uint16_t>(kMaxSegment));
  put8(o, 1);  // NOP
  put8(o, 3);  // window scale
  put8(o, 3);
  put8(o, kWindowShift);
  return o;
}

}  // namespace

std::string file_header() {
  std::string h;
  put32le(h, 0xa1b2c3d4);  // microsecond timestamps
  put8(h, 2);              // version 2.4, little-endian like every field
  put8(h, 0);
  put8(h, 4);
  put8(h, 0);
  put32le(h, 0);  // thiszone
  put32le(h, 0);  // sigfigs
  put32le(h, kFileSnaplen);
  put32le(h, 1);  // LINKTYPE_ETHERNET
  return h;
}

std::optional<Address> Address::parse(std::string_view host_port) {
  std::string_view host;
  std::string_view port;
  Address a;
  if (!host_port.empty() && host_port.front() == '[') {
    const auto close = host_port.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = host_port.substr(1, close - 1);
    port = host_port.substr(close + 2);
    a.v6 = true;
  } else {
    const auto colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return std::nullopt;
  a.port = static_cast<std::uint16_t>(value);
  const std::string text(host);
  if (::inet_pton(a.v6 ? AF_INET6 : AF_INET, text.c_str(), a.ip.data()) != 1) return std::nullopt;
  return a;
}

Address Address::any(bool v6, std::uint16_t port) {
  Address a;
  a.v6 = v6;
  a.port = port;
  return a;
}

Address Address::as_v6() const {
  if (v6) return *this;
  Address a;
  a.v6 = true;
  a.port = port;
  a.ip[10] = 0xff;
  a.ip[11] = 0xff;
  for (int i = 0; i < 4; ++i) a.ip[12 + i] = ip[i];
  return a;
}

std::uint16_t port_of(std::string_view host_port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string_view::npos) return 0;
  const std::string_view port = host_port.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return 0;
  return static_cast<std::uint16_t>(value);
}

std::uint16_t internet_checksum(std::string_view bytes) {
  Checksum c;
  c.add(bytes);
  return c.value();
}

void append_packet(std::string& out, std::chrono::nanoseconds since_epoch, Side from,
                   const Address& src, const Address& dst, const TcpSegment& seg,
                   std::size_t snaplen) {
  if (src.v6 != dst.v6) throw std::invalid_argument("append_packet: mixed address families");
  if (seg.payload.size() > kMaxSegment)
    throw std::invalid_argument("append_packet: payload larger than kMaxSegment");
  if (seg.options.size() % 4 != 0 || seg.options.size() > 40)
    throw std::invalid_argument("append_packet: TCP options must be 4-byte words, at most 40");

  const std::size_t tcp_header = 20 + seg.options.size();
  const std::size_t tcp_length = tcp_header + seg.payload.size();

  std::string headers;  // Ethernet + IP + TCP
  headers.reserve(14 + 40 + tcp_header);
  const std::uint8_t client_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  const std::uint8_t server_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
  const auto* src_mac = from == Side::client ? client_mac : server_mac;
  const auto* dst_mac = from == Side::client ? server_mac : client_mac;
  headers.append(reinterpret_cast<const char*>(dst_mac), 6);
  headers.append(reinterpret_cast<const char*>(src_mac), 6);
  put16be(headers, src.v6 ? kEtherIPv6 : kEtherIPv4);

  const std::size_t ip_at = headers.size();
  if (src.v6) {
    put32be(headers, 0x60000000);  // version 6, no traffic class, no flow label
    put16be(headers, static_cast<std::uint16_t>(tcp_length));
    put8(headers, kProtoTcp);
    put8(headers, kTtl);  // hop limit
    put_ip(headers, src);
    put_ip(headers, dst);
  } else {
    put8(headers, 0x45);  // version 4, 20-byte header
    put8(headers, 0);
    put16be(headers, static_cast<std::uint16_t>(20 + tcp_length));
    put16be(headers, seg.ip_id);
    put16be(headers, 0x4000);  // don't fragment
    put8(headers, kTtl);
    put8(headers, kProtoTcp);
    put16be(headers, 0);  // checksum, below
    put_ip(headers, src);
    put_ip(headers, dst);
    set16be(headers, ip_at + 10, internet_checksum(std::string_view(headers).substr(ip_at, 20)));
  }

  const std::size_t tcp_at = headers.size();
  put16be(headers, src.port);
  put16be(headers, dst.port);
  put32be(headers, seg.seq);
  put32be(headers, (seg.flags & tcp_flag::ack) ? seg.ack : 0);
  put8(headers, static_cast<std::uint8_t>(tcp_header / 4 << 4));
  put8(headers, seg.flags);
  put16be(headers, seg.window);
  put16be(headers, 0);  // checksum, below
  put16be(headers, 0);  // urgent pointer
  headers.append(seg.options);

  std::string pseudo;
  put_ip(pseudo, src);
  put_ip(pseudo, dst);
  if (src.v6) {
    put32be(pseudo, static_cast<std::uint32_t>(tcp_length));
    put32be(pseudo, kProtoTcp);
  } else {
    put8(pseudo, 0);
    put8(pseudo, kProtoTcp);
    put16be(pseudo, static_cast<std::uint16_t>(tcp_length));
  }
  Checksum sum;
  sum.add(pseudo);
  sum.add(std::string_view(headers).substr(tcp_at));  // even length: 20 + 4n
  sum.add(seg.payload);
  set16be(headers, tcp_at + 16, sum.value());

  const std::size_t kept =
      snaplen == 0 ? seg.payload.size() : std::min(seg.payload.size(), snaplen);
  const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count();
  put32le(out, static_cast<std::uint32_t>(usec / 1000000));
  put32le(out, static_cast<std::uint32_t>(usec % 1000000));
  put32le(out, static_cast<std::uint32_t>(headers.size() + kept));
  put32le(out, static_cast<std::uint32_t>(headers.size() + seg.payload.size()));
  out += headers;
  out.append(seg.payload.substr(0, kept));
}

TcpFlow::TcpFlow(const Address& client, const Address& server, std::uint32_t client_isn,
                 std::uint32_t server_isn, std::size_t snaplen)
    : ends_{End{client, client_isn}, End{server, server_isn}}, snaplen_(snaplen) {
  if (client.v6 != server.v6) {
    ends_[0].address = client.as_v6();
    ends_[1].address = server.as_v6();
  }
}

void TcpFlow::send(std::string& out, std::chrono::nanoseconds t, Side from, std::uint8_t flags,
                   std::string_view payload, std::string_view options) {
  End& me = end(from);
  End& peer = end(other(from));
  TcpSegment seg;
  seg.seq = me.next_seq;
  seg.ack = peer.next_seq;
  seg.flags = flags;
  seg.options = options;
  seg.payload = payload;
  seg.ip_id = me.ip_id++;
  append_packet(out, t, from, me.address, peer.address, seg, snaplen_);
  me.next_seq += static_cast<std::uint32_t>(payload.size());
  if (flags & (tcp_flag::syn | tcp_flag::fin)) ++me.next_seq;
  me.unacked += static_cast<std::uint32_t>(payload.size());
  if (flags & tcp_flag::ack) peer.unacked = 0;
}

void TcpFlow::open(std::string& out, std::chrono::nanoseconds t) {
  const std::string options = syn_options();
  send(out, t, Side::client, tcp_flag::syn, {}, options);
  send(out, t, Side::server, tcp_flag::syn | tcp_flag::ack, {}, options);
  send(out, t, Side::client, tcp_flag::ack);
}

void TcpFlow::data(std::string& out, std::chrono::nanoseconds t, Side from,
                   std::string_view bytes) {
  if (finished(from)) return;
  while (!bytes.empty()) {
    const std::string_view piece = bytes.substr(0, kMaxSegment);
    bytes.remove_prefix(piece.size());
    send(out, t, from, bytes.empty() ? tcp_flag::ack | tcp_flag::psh : tcp_flag::ack, piece);
  }
  if (end(from).unacked >= kAckEvery) send(out, t, other(from), tcp_flag::ack);
}

void TcpFlow::fin(std::string& out, std::chrono::nanoseconds t, Side from) {
  if (finished(from)) return;
  send(out, t, from, tcp_flag::fin | tcp_flag::ack);
  end(from).fin_sent = true;
  send(out, t, other(from), tcp_flag::ack);
}

void TcpFlow::reset(std::string& out, std::chrono::nanoseconds t, Side from) {
  if (reset_) return;
  send(out, t, from, tcp_flag::rst | tcp_flag::ack);
  reset_ = true;
}

}  // namespace sluice::capture
