#pragma once
// pcap encoding for `capture`, free of sockets and files: a classic pcap file (microsecond
// timestamps, magic a1b2c3d4 written little-endian, LINKTYPE_ETHERNET) whose records are
// synthesized Ethernet + IPv4/IPv6 + TCP packets, and TcpFlow, which turns the events of one
// channel (open, bytes each way, half-closes, an abort) into the packets of one plausible TCP
// conversation: a three-way handshake, sequence and acknowledgement numbers that follow the bytes
// of each direction, FIN or RST at the end, correct IPv4 header and TCP checksums.
//
// Bytes are split into segments of at most kMaxSegment payload bytes, because the IPv4 total
// length (and the IPv6 payload length) is 16 bits. Each packet keeps at most `snaplen` payload
// bytes in the file (0: all) while its IP length and sequence numbers count them all.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::capture {

// 64000 payload bytes, plus at most 40 (IPv6) + 28 (TCP with SYN options) bytes of headers, fit
// the 16-bit IP length with room to spare, like the segments of a 64 KiB-MTU loopback capture; a
// 1460-byte MSS would take 44 times as many records for the same bytes.
inline constexpr std::size_t kMaxSegment = 64000;
// The snaplen field of the file header: every record capture writes is at most this long.
inline constexpr std::uint32_t kFileSnaplen = 65535;
inline constexpr std::size_t kFileHeaderSize = 24;
inline constexpr std::size_t kRecordHeaderSize = 16;

// The 24-byte pcap file header capture writes (and expects at the start of a file it appends to).
std::string file_header();

// An IPv4 or IPv6 address (IPv4 in the first 4 bytes of `ip`) and a TCP port.
struct Address {
  bool v6 = false;
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;

  // "1.2.3.4:80" or "[::1]:80" with a numeric host; nullopt otherwise.
  static std::optional<Address> parse(std::string_view host_port);
  // The unspecified address (0.0.0.0 or ::) with `port`.
  static Address any(bool v6, std::uint16_t port);
  // The same address as an IPv4-mapped IPv6 address (::ffff:a.b.c.d); an IPv6 one unchanged.
  Address as_v6() const;
  bool operator==(const Address&) const = default;
};
// The port of "host:port" / "[v6]:port", or 0 if there is none.
std::uint16_t port_of(std::string_view host_port);

// Which end of the conversation sends a packet; it picks the Ethernet source address
// (02:00:00:00:00:01 for the client, 02:00:00:00:00:02 for the server).
enum class Side : std::uint8_t { client, server };

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

struct TcpSegment {
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;
  std::uint16_t window = 65535;
  std::string_view options;  // TCP options, a multiple of 4 bytes
  std::string_view payload;  // at most kMaxSegment bytes
  std::uint16_t ip_id = 0;   // IPv4 identification
};

// The internet checksum (RFC 1071) of `bytes`, as stored in a header (big-endian value).
std::uint16_t internet_checksum(std::string_view bytes);

// Appends one pcap record with time `since_epoch` (Unix time): an Ethernet frame sent by `from`,
// from `src` to `dst` (same family), carrying `seg`, whose payload is cut to `snaplen` bytes in the
// record (0: kept whole). Throws std::invalid_argument for mixed families or an oversized payload.
void append_packet(std::string& out, std::chrono::nanoseconds since_epoch, Side from,
                   const Address& src, const Address& dst, const TcpSegment& seg,
                   std::size_t snaplen);

// One TCP conversation, written as pcap records into the string each call is given. An IPv4
// and an IPv6 end are both written as IPv6 (the IPv4 one mapped, as a dual-stack socket sees it).
class TcpFlow {
 public:
  TcpFlow(const Address& client, const Address& server, std::uint32_t client_isn,
          std::uint32_t server_isn, std::size_t snaplen);

  const Address& address(Side s) const { return end(s).address; }
  std::uint32_t next_seq(Side s) const { return end(s).next_seq; }

  // SYN (with MSS and window-scale options), SYN-ACK, ACK.
  void open(std::string& out, std::chrono::nanoseconds t);
  // `bytes` sent by `from`, in segments of at most kMaxSegment bytes (PSH on the last one).
  // Ignored after `from` sent FIN or after a reset.
  void data(std::string& out, std::chrono::nanoseconds t, Side from, std::string_view bytes);
  // `from` half-closes: FIN-ACK from it, the ACK of the other side. Once per side.
  void fin(std::string& out, std::chrono::nanoseconds t, Side from);
  // `from` aborts: RST-ACK; nothing follows it.
  void reset(std::string& out, std::chrono::nanoseconds t, Side from);

  bool finished(Side s) const { return end(s).fin_sent || reset_; }
  bool was_reset() const { return reset_; }

 private:
  struct End {
    Address address;
    std::uint32_t next_seq;
    std::uint16_t ip_id = 1;
    bool fin_sent = false;
    std::uint32_t unacked = 0;  // bytes sent since the other side last acknowledged
  };
  End& end(Side s) { return ends_[s == Side::client ? 0 : 1]; }
  const End& end(Side s) const { return ends_[s == Side::client ? 0 : 1]; }
  static Side other(Side s) { return s == Side::client ? Side::server : Side::client; }
  void send(std::string& out, std::chrono::nanoseconds t, Side from, std::uint8_t flags,
            std::string_view payload = {}, std::string_view options = {});

  std::array<End, 2> ends_;
  std::size_t snaplen_;
  bool reset_ = false;
};

}  // namespace sluice::capture
