#pragma once
// A minimal reader of the pcap files `capture` writes (Ethernet + IPv4/IPv6 + TCP), written
// independently of the encoder so the tests check its bytes, not its own idea of them. It throws
// std::runtime_error on anything malformed, and verifies checksums itself.
#include <arpa/inet.h>

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pcap_reader {

inline std::uint32_t le32(std::string_view s, std::size_t at) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3])) << 24;
}
inline std::uint16_t be16(std::string_view s, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(s[at]) << 8 |
                                    static_cast<unsigned char>(s[at + 1]));
}
inline std::uint32_t be32(std::string_view s, std::size_t at) {
  return static_cast<std::uint32_t>(be16(s, at)) << 16 | be16(s, at + 2);
}

// RFC 1071 sum over pieces (each even-length except the last), folded, not complemented.
inline std::uint16_t ones_sum(std::initializer_list<std::string_view> pieces) {
  std::uint64_t sum = 0;
  for (std::string_view p : pieces) {
    for (std::size_t i = 0; i + 1 < p.size(); i += 2) sum += be16(p, i);
    if (p.size() % 2) sum += static_cast<std::uint64_t>(static_cast<unsigned char>(p.back())) << 8;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

inline std::string ip_text(bool v6, std::string_view raw) {
  char buf[INET6_ADDRSTRLEN];
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, raw.data(), buf, sizeof buf);
  return buf;
}

struct Packet {
  std::uint32_t ts_sec = 0, ts_usec = 0, incl_len = 0, orig_len = 0;
  std::string frame;  // as kept in the file
  std::string dst_mac, src_mac;
  bool v6 = false;
  std::string src, dst;  // "127.0.0.1" / "::1"
  std::uint16_t ip_id = 0;
  std::uint8_t ttl = 0;
  std::size_t ip_length = 0;  // IPv4 total length, or IPv6 payload length + 40
  std::uint16_t sport = 0, dport = 0;
  std::uint32_t seq = 0, ack = 0;
  std::uint8_t flags = 0;
  std::uint16_t window = 0;
  std::string options;
  std::string payload;           // as kept in the file
  std::size_t payload_size = 0;  // on the wire (from the IP length)
  bool ip_checksum_ok = true;    // IPv4 only
  bool tcp_checksum_ok = false;  // checkable only for untruncated packets
  bool truncated() const { return incl_len < orig_len; }
  std::int64_t micros() const { return std::int64_t(ts_sec) * 1000000 + ts_usec; }
};

struct File {
  std::string header;
  std::vector<Packet> packets;
};

inline Packet parse_frame(std::string_view frame, std::uint32_t orig_len) {
  Packet p;
  p.frame = std::string(frame);
  if (frame.size() < 14) throw std::runtime_error("frame shorter than Ethernet");
  p.dst_mac = std::string(frame.substr(0, 6));
  p.src_mac = std::string(frame.substr(6, 6));
  const std::uint16_t type = be16(frame, 12);
  std::size_t tcp_at = 0;
  std::string pseudo;
  auto put16 = [&](std::uint16_t v) {
    pseudo += static_cast<char>(v >> 8);
    pseudo += static_cast<char>(v);
  };
  std::size_t tcp_length = 0;
  if (type == 0x0800) {
    if (frame.size() < 34) throw std::runtime_error("short IPv4 header");
    if (static_cast<unsigned char>(frame[14]) != 0x45) throw std::runtime_error("IPv4 version/IHL");
    if (static_cast<unsigned char>(frame[23]) != 6) throw std::runtime_error("IPv4 not TCP");
    p.ip_length = be16(frame, 16);
    p.ip_id = be16(frame, 18);
    p.ttl = static_cast<std::uint8_t>(frame[22]);
    p.ip_checksum_ok = ones_sum({frame.substr(14, 20)}) == 0xffff;
    p.src = ip_text(false, frame.substr(26, 4));
    p.dst = ip_text(false, frame.substr(30, 4));
    tcp_at = 34;
    tcp_length = p.ip_length - 20;
    pseudo = std::string(frame.substr(26, 8));
    put16(6);
    put16(static_cast<std::uint16_t>(tcp_length));
  } else if (type == 0x86dd) {
    if (frame.size() < 54) throw std::runtime_error("short IPv6 header");
    if ((static_cast<unsigned char>(frame[14]) >> 4) != 6) throw std::runtime_error("IPv6 version");
    if (static_cast<unsigned char>(frame[20]) != 6) throw std::runtime_error("IPv6 not TCP");
    p.v6 = true;
    p.ip_length = be16(frame, 18) + 40u;
    p.ttl = static_cast<std::uint8_t>(frame[21]);
    p.src = ip_text(true, frame.substr(22, 16));
    p.dst = ip_text(true, frame.substr(38, 16));
    tcp_at = 54;
    tcp_length = p.ip_length - 40;
    pseudo = std::string(frame.substr(22, 32));
    put16(0);
    put16(static_cast<std::uint16_t>(tcp_length));
    put16(0);
    put16(6);
  } else {
    throw std::runtime_error("unknown ethertype");
  }
  if (frame.size() < tcp_at + 20) throw std::runtime_error("short TCP header");
  p.sport = be16(frame, tcp_at);
  p.dport = be16(frame, tcp_at + 2);
  p.seq = be32(frame, tcp_at + 4);
  p.ack = be32(frame, tcp_at + 8);
  const std::size_t header = (static_cast<unsigned char>(frame[tcp_at + 12]) >> 4) * 4u;
  p.flags = static_cast<std::uint8_t>(frame[tcp_at + 13]);
  p.window = be16(frame, tcp_at + 14);
  if (header < 20 || frame.size() < tcp_at + header) throw std::runtime_error("TCP data offset");
  p.options = std::string(frame.substr(tcp_at + 20, header - 20));
  p.payload = std::string(frame.substr(tcp_at + header));
  p.payload_size = tcp_length - header;
  if (14 + p.ip_length != orig_len) throw std::runtime_error("orig_len disagrees with IP length");
  if (p.payload.size() == p.payload_size)
    p.tcp_checksum_ok = ones_sum({pseudo, frame.substr(tcp_at)}) == 0xffff;
  return p;
}

inline File parse(std::string_view bytes) {
  File f;
  if (bytes.size() < 24) throw std::runtime_error("no pcap file header");
  f.header = std::string(bytes.substr(0, 24));
  std::size_t at = 24;
  while (at < bytes.size()) {
    if (bytes.size() - at < 16) throw std::runtime_error("partial record header");
    Packet p;
    const auto incl = le32(bytes, at + 8);
    const auto orig = le32(bytes, at + 12);
    if (incl > orig) throw std::runtime_error("incl_len > orig_len");
    if (bytes.size() - at - 16 < incl) throw std::runtime_error("partial record");
    Packet parsed = parse_frame(bytes.substr(at + 16, incl), orig);
    parsed.ts_sec = le32(bytes, at);
    parsed.ts_usec = le32(bytes, at + 4);
    parsed.incl_len = incl;
    parsed.orig_len = orig;
    f.packets.push_back(std::move(parsed));
    at += 16 + incl;
  }
  return f;
}

inline std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The payload each port sent, in file order (retransmissions are never written).
inline std::map<std::uint16_t, std::string> payload_by_port(const File& f) {
  std::map<std::uint16_t, std::string> out;
  for (const Packet& p : f.packets) out[p.sport] += p.payload;
  return out;
}

}  // namespace pcap_reader
