// capture's pcap encoding, byte by byte: file header, checksums, seq/ack, segmenting, IPv6.
#define BOOST_TEST_MODULE capture_pcap
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <string>

#include "capture/pcap.hpp"
#include "pcap_reader.hpp"

using namespace sluice::capture;
using namespace std::chrono_literals;
namespace flag = sluice::capture::tcp_flag;

namespace {

Address addr(std::string_view s) {
  auto a = Address::parse(s);
  BOOST_REQUIRE_MESSAGE(a, "unparsable test address " << s);
  return *a;
}

pcap_reader::File records(const std::string& out) {
  return pcap_reader::parse(file_header() + out);
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + i / 251);
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(file_header_is_classic_microsecond_ethernet) {
  const std::string h = file_header();
  const std::string expected(
      "\xd4\xc3\xb2\xa1\x02\x00\x04\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00"
      "\xff\xff\x00\x00\x01\x00\x00\x00",
      24);
  BOOST_TEST(h == expected);
}

BOOST_AUTO_TEST_CASE(internet_checksum_known_answers) {
  // RFC 1071's example words 0001 f203 f4f5 f6f7: sum ddf2, checksum 220d.
  BOOST_TEST(internet_checksum(std::string("\x00\x01\xf2\x03\xf4\xf5\xf6\xf7", 8)) == 0x220d);
  // A textbook IPv4 header (checksum field zero): b861.
  const std::string ip(
      "\x45\x00\x00\x73\x00\x00\x40\x00\x40\x11\x00\x00\xc0\xa8\x00\x01\xc0\xa8"
      "\x00\xc7",
      20);
  BOOST_TEST(internet_checksum(ip) == 0xb861);
  // An odd length pads with a zero byte.
  BOOST_TEST(internet_checksum(std::string("\x01", 1)) == static_cast<std::uint16_t>(~0x0100));
}

BOOST_AUTO_TEST_CASE(address_parsing) {
  const auto v4 = Address::parse("10.1.2.3:8080");
  BOOST_REQUIRE(v4);
  BOOST_TEST(!v4->v6);
  BOOST_TEST(v4->port == 8080);
  BOOST_TEST(v4->ip[0] == 10);
  BOOST_TEST(v4->ip[3] == 3);
  const auto v6 = Address::parse("[2001:db8::1]:443");
  BOOST_REQUIRE(v6);
  BOOST_TEST(v6->v6);
  BOOST_TEST(v6->port == 443);
  BOOST_TEST(v6->ip[0] == 0x20);
  BOOST_TEST(v6->ip[15] == 1);
  BOOST_TEST(!Address::parse("example.org:443"));
  BOOST_TEST(!Address::parse("10.1.2.3"));
  BOOST_TEST(!Address::parse("10.1.2.3:70000"));
  BOOST_TEST(!Address::parse("[::1]"));
  BOOST_TEST(!Address::parse(""));
  BOOST_TEST(port_of("example.org:443") == 443);
  BOOST_TEST(port_of("") == 0);
  const Address mapped = v4->as_v6();
  BOOST_TEST(mapped.v6);
  BOOST_TEST(pcap_reader::ip_text(
                 true, std::string_view(reinterpret_cast<const char*>(mapped.ip.data()), 16)) ==
             "::ffff:10.1.2.3");
}

BOOST_AUTO_TEST_CASE(ipv4_packet_bytes) {
  std::string out;
  TcpSegment seg;
  seg.seq = 0x01020304;
  seg.ack = 0x0a0b0c0d;
  seg.flags = flag::ack | flag::psh;
  seg.payload = "hello";
  seg.ip_id = 0x1234;
  append_packet(out, 1500007000ns, Side::client, addr("10.0.0.1:40000"), addr("192.0.2.7:443"), seg,
                0);
  // Record header: 1.500007 s, 14 + 20 + 20 + 5 bytes kept of as many.
  BOOST_REQUIRE(out.size() == 16 + 59u);
  BOOST_TEST(pcap_reader::le32(out, 0) == 1u);
  BOOST_TEST(pcap_reader::le32(out, 4) == 500007u);
  BOOST_TEST(pcap_reader::le32(out, 8) == 59u);
  BOOST_TEST(pcap_reader::le32(out, 12) == 59u);
  // Ethernet: to the server's MAC from the client's, IPv4.
  BOOST_TEST(out.substr(16, 14) == std::string("\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14));
  // IPv4 header; its checksum computed independently (RFC 1071 in Python).
  const std::string ip = out.substr(30, 20);
  const std::string expected_ip(
      "\x45\x00\x00\x2d\x12\x34\x40\x00\x40\x06\x00\x00\x0a\x00\x00\x01"
      "\xc0\x00\x02\x07",
      20);
  BOOST_TEST(ip.substr(0, 10) == expected_ip.substr(0, 10));
  BOOST_TEST(ip.substr(12) == expected_ip.substr(12));
  BOOST_TEST(pcap_reader::be16(ip, 10) == internet_checksum(expected_ip));
  BOOST_TEST(pcap_reader::be16(ip, 10) == 0x5c8f);
  const auto p = records(out).packets.at(0);
  BOOST_TEST(p.ip_checksum_ok);
  BOOST_TEST(p.tcp_checksum_ok);
  BOOST_TEST(p.src == "10.0.0.1");
  BOOST_TEST(p.dst == "192.0.2.7");
  BOOST_TEST(p.sport == 40000);
  BOOST_TEST(p.dport == 443);
  BOOST_TEST(p.seq == 0x01020304u);
  BOOST_TEST(p.ack == 0x0a0b0c0du);
  BOOST_TEST(p.flags == (flag::ack | flag::psh));
  BOOST_TEST(p.window == 65535);
  BOOST_TEST(p.payload == "hello");
  // TCP checksum computed independently (RFC 1071 in Python): pseudo header, header, "hello".
  BOOST_TEST(pcap_reader::be16(out, 16 + 34 + 16) == 0xe7d3);
}

BOOST_AUTO_TEST_CASE(ipv6_packet_bytes) {
  std::string out;
  TcpSegment seg;
  seg.seq = 7;
  seg.ack = 9;
  seg.flags = flag::ack;
  seg.payload = "odd";
  append_packet(out, 0ns, Side::server, addr("[2001:db8::2]:443"), addr("[::1]:50000"), seg, 0);
  BOOST_REQUIRE(out.size() == 16 + 14 + 40 + 20 + 3u);
  BOOST_TEST(out.substr(16 + 6, 6) == std::string("\x02\0\0\0\0\x02", 6));  // from the server
  BOOST_TEST(pcap_reader::be16(out, 16 + 12) == 0x86dd);
  BOOST_TEST(pcap_reader::be32(out, 30) == 0x60000000u);  // version, class, flow label
  BOOST_TEST(pcap_reader::be16(out, 34) == 23);           // payload length: TCP 20 + 3
  BOOST_TEST(static_cast<int>(out[36]) == 6);             // next header: TCP
  BOOST_TEST(static_cast<int>(out[37]) == 64);            // hop limit
  const auto p = records(out).packets.at(0);
  BOOST_TEST(p.v6);
  BOOST_TEST(p.src == "2001:db8::2");
  BOOST_TEST(p.dst == "::1");
  BOOST_TEST(p.sport == 443);
  BOOST_TEST(p.dport == 50000);
  BOOST_TEST(p.tcp_checksum_ok);
  BOOST_TEST(p.payload == "odd");
}

BOOST_AUTO_TEST_CASE(bad_packets_are_refused) {
  std::string out;
  TcpSegment seg;
  BOOST_CHECK_THROW(
      append_packet(out, 0ns, Side::client, addr("1.2.3.4:1"), addr("[::1]:2"), seg, 0),
      std::invalid_argument);
  const std::string big(kMaxSegment + 1, 'x');
  seg.payload = big;
  BOOST_CHECK_THROW(
      append_packet(out, 0ns, Side::client, addr("1.2.3.4:1"), addr("1.2.3.5:2"), seg, 0),
      std::invalid_argument);
  BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(handshake_data_fin_seq_and_ack) {
  const std::uint32_t c = 1000, s = 5000;
  TcpFlow flow(addr("127.0.0.1:40000"), addr("127.0.0.1:7001"), c, s, 0);
  std::string out;
  flow.open(out, 1s);
  flow.data(out, 2s, Side::client, "0123456789");
  flow.data(out, 3s, Side::server, "abcde");
  flow.fin(out, 4s, Side::client);
  flow.data(out, 5s, Side::server, "xy");
  flow.data(out, 5s, Side::client, "ignored: after FIN");
  flow.fin(out, 6s, Side::server);
  const auto f = records(out);
  struct Want {
    std::uint16_t sport;
    std::uint32_t seq, ack;
    std::uint8_t flags;
    std::string payload;
    std::int64_t sec;
  };
  const std::vector<Want> want = {
      {40000, c, 0, flag::syn, "", 1},
      {7001, s, c + 1, flag::syn | flag::ack, "", 1},
      {40000, c + 1, s + 1, flag::ack, "", 1},
      {40000, c + 1, s + 1, flag::ack | flag::psh, "0123456789", 2},
      {7001, s + 1, c + 11, flag::ack | flag::psh, "abcde", 3},
      {40000, c + 11, s + 6, flag::fin | flag::ack, "", 4},
      {7001, s + 6, c + 12, flag::ack, "", 4},
      {7001, s + 6, c + 12, flag::ack | flag::psh, "xy", 5},
      {7001, s + 8, c + 12, flag::fin | flag::ack, "", 6},
      {40000, c + 12, s + 9, flag::ack, "", 6},
  };
  BOOST_REQUIRE(f.packets.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    BOOST_TEST_CONTEXT("packet " << i) {
      const auto& p = f.packets[i];
      BOOST_TEST(p.sport == want[i].sport);
      BOOST_TEST(p.seq == want[i].seq);
      BOOST_TEST(p.ack == want[i].ack);
      BOOST_TEST(p.flags == want[i].flags);
      BOOST_TEST(p.payload == want[i].payload);
      BOOST_TEST(p.micros() == want[i].sec * 1000000);
      BOOST_TEST(p.ip_checksum_ok);
      BOOST_TEST(p.tcp_checksum_ok);
      BOOST_TEST(p.src_mac.back() == (p.sport == 40000 ? 1 : 2));
    }
  }
  // SYNs carry MSS kMaxSegment and window scale 14; later packets have no options.
  BOOST_TEST(f.packets[0].options == std::string("\x02\x04\xfa\x00\x01\x03\x03\x0e", 8));
  BOOST_TEST(f.packets[1].options == f.packets[0].options);
  BOOST_TEST(f.packets[2].options.empty());
  // IPv4 ids count per sender.
  BOOST_TEST(f.packets[0].ip_id + 1 == f.packets[2].ip_id);
  BOOST_TEST(flow.finished(Side::client));
  BOOST_TEST(flow.finished(Side::server));
  BOOST_TEST(!flow.was_reset());
}

BOOST_AUTO_TEST_CASE(large_chunks_are_split_and_seq_wraps) {
  const std::uint32_t c = 0xfffff000;  // wraps inside the transfer
  TcpFlow flow(addr("127.0.0.1:40000"), addr("127.0.0.1:7001"), c, 1, 0);
  std::string out;
  flow.open(out, 0s);
  const std::string bytes = pattern(2 * kMaxSegment + 22000);
  flow.data(out, 1s, Side::client, bytes);
  const auto f = records(out);
  BOOST_REQUIRE(f.packets.size() == 3u + 3u);
  std::string joined;
  std::uint32_t seq = c + 1;
  for (std::size_t i = 3; i < 6; ++i) {
    const auto& p = f.packets[i];
    BOOST_TEST(p.seq == seq);
    BOOST_TEST(p.tcp_checksum_ok);
    BOOST_TEST(p.ip_checksum_ok);
    BOOST_TEST(p.ip_length == 40 + p.payload.size());
    BOOST_TEST(bool(p.flags & flag::psh) == (i == 5));
    seq += static_cast<std::uint32_t>(p.payload.size());
    joined += p.payload;
  }
  BOOST_TEST(f.packets[3].payload.size() == kMaxSegment);
  BOOST_TEST(f.packets[5].payload.size() == 22000u);
  BOOST_TEST((joined == bytes));
  BOOST_TEST(flow.next_seq(Side::client) == seq);
  BOOST_TEST(seq < c);  // it wrapped
}

BOOST_AUTO_TEST_CASE(snaplen_cuts_the_record_not_the_sequence) {
  TcpFlow flow(addr("10.0.0.1:1"), addr("10.0.0.2:2"), 100, 200, 10);
  std::string out;
  flow.open(out, 0s);
  const std::string bytes = pattern(1000);
  flow.data(out, 0s, Side::client, bytes);
  flow.data(out, 0s, Side::server, "short");
  const auto f = records(out);
  BOOST_REQUIRE(f.packets.size() == 5u);
  const auto& cut = f.packets[3];
  BOOST_TEST(cut.truncated());
  BOOST_TEST(cut.payload == bytes.substr(0, 10));
  BOOST_TEST(cut.payload_size == 1000u);
  BOOST_TEST(cut.incl_len == 54u + 10u);
  BOOST_TEST(cut.orig_len == 54u + 1000u);
  // The checksum covers the whole payload, which the file no longer holds: check it here.
  const std::string pseudo("\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x06\x03\xfc",
                           12);  // TCP length 1020
  BOOST_TEST(pcap_reader::ones_sum({pseudo, std::string_view(cut.frame).substr(34, 20), bytes}) ==
             0xffff);
  BOOST_TEST(f.packets[4].ack == 101u + 1000u);  // the next seq counts all 1000 bytes
  BOOST_TEST(!f.packets[4].truncated());
  BOOST_TEST(f.packets[4].payload == "short");
}

BOOST_AUTO_TEST_CASE(mixed_families_are_written_as_ipv6) {
  TcpFlow flow(addr("127.0.0.1:40000"), addr("[::1]:7001"), 1, 2, 0);
  std::string out;
  flow.open(out, 0s);
  flow.data(out, 0s, Side::server, "v6");
  const auto f = records(out);
  BOOST_REQUIRE(f.packets.size() == 4u);
  for (const auto& p : f.packets) {
    BOOST_TEST(p.v6);
    BOOST_TEST(p.tcp_checksum_ok);
  }
  BOOST_TEST(f.packets[0].src == "::ffff:127.0.0.1");
  BOOST_TEST(f.packets[0].dst == "::1");
  BOOST_TEST(f.packets[3].src == "::1");
}

BOOST_AUTO_TEST_CASE(reset_ends_everything) {
  TcpFlow flow(addr("127.0.0.1:40000"), addr("127.0.0.1:7001"), 10, 20, 0);
  std::string out;
  flow.open(out, 0s);
  flow.data(out, 0s, Side::client, "abc");
  flow.reset(out, 1s, Side::server);
  flow.data(out, 2s, Side::client, "lost");
  flow.fin(out, 2s, Side::client);
  flow.reset(out, 2s, Side::client);
  const auto f = records(out);
  BOOST_REQUIRE(f.packets.size() == 5u);
  const auto& rst = f.packets[4];
  BOOST_TEST(rst.flags == (flag::rst | flag::ack));
  BOOST_TEST(rst.sport == 7001);
  BOOST_TEST(rst.seq == 21u);
  BOOST_TEST(rst.ack == 14u);
  BOOST_TEST(flow.was_reset());
  BOOST_TEST(flow.finished(Side::client));
}

BOOST_AUTO_TEST_CASE(a_long_one_way_transfer_gets_acknowledged) {
  // More than 256 MiB without a byte back: the receiver acknowledges, so the 1 GiB scaled window
  // never looks full. Counted without keeping the records.
  TcpFlow flow(addr("127.0.0.1:40000"), addr("127.0.0.1:7001"), 0, 0, 1);
  const std::string chunk = pattern(kMaxSegment);
  std::string out;
  std::size_t acks = 0;
  for (int i = 0; i < 300 * 1024 * 1024 / static_cast<int>(kMaxSegment); ++i) {
    out.clear();
    flow.data(out, 0s, Side::client, chunk);
    const auto f = records(out);
    for (const auto& p : f.packets)
      if (p.sport == 7001) {
        ++acks;
        BOOST_TEST(p.flags == flag::ack);
        BOOST_TEST(p.ack == flow.next_seq(Side::client));
      }
  }
  BOOST_TEST(acks == 1u);
}
