#pragma once
// capture: writes the bytes that pass through it, both ways, into pcap files that Wireshark and
// tshark open as real TCP conversations (pcap.hpp: Ethernet + IPv4/IPv6 + TCP, a handshake,
// seq/ack numbers that follow the bytes, FIN at each half-close). Bytes pass unchanged.
//
// Options: `path` (required): a file that every channel of every listener naming it appends to
// (created with a pcap header if missing, else appended to if it is a capture of this kind), or a
// folder (a path ending in "/", or an existing directory; created if missing) that gets one file
// per channel, `<UTC open time>_<listener>_ch<channel id>.pcap`, e.g.
// `20250102T030405.678Z_demo_ch7.pcap`. `max_file_bytes` (size, 0 = no limit, else at least
// 64KiB): rotation, see CaptureFile. `snaplen` (size, 0 = all): payload bytes kept per packet.
//
// The packets carry the client's address and port, and the upstream's as connected (as
// configured if it never connects: a numeric one, else 0.0.0.0 / :: with its port). Until the
// upstream is connected the channel's packets wait in memory (at most 1 MiB of payload; past
// that, or at close, the configured upstream is used). Times are the system clock at on_open plus
// the channel's clock since then. At close, a direction not yet finished ends with FIN; with one
// RST instead when the close reason names a failure ("reset", "failed", "error", "threw", "timed
// out"), sent by the upstream when the reason starts with "upstream" or names a write to it, else
// by the client.
//
// Files are flushed when a channel closes, about a second after a channel wrote, and when 256 KiB
// are waiting. A write error is logged once and capture stops for that file; the channel goes on.
// An unusable path at config time is a ConfigError at /.../path.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_capture(sluice::Registry& registry);

}  // namespace sluice::builtin
