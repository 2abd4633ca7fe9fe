#pragma once
// tee: shadow traffic. Copies the bytes of one or both directions of every channel to one or more
// mirror upstreams ("host:port", IPv6 in brackets, or a host name resolved asynchronously).
//
// Per channel and mirror, a connection is opened at on_open on the channel's own event loop. The
// copied bytes go to it in the order they passed this middleware (with `both`, the two
// directions interleaved as they passed); the mirror's replies are read and discarded. The mirror
// gets a FIN once every copied direction has half-closed and its queue has drained.
//
// The real channel never waits for a mirror: on_data always passes. A mirror that cannot keep up
// (more than `max_buffer` bytes queued for it) loses this channel's copy: its connection is
// closed, since a stream with a hole in it is useless, and the rest is counted as dropped. A
// refused, timed-out or failing mirror is logged once per channel (warn) and never affects the
// channel. At the channel's close one info line per mirror gives the bytes copied and dropped;
// what is still queued then may be flushed for `linger`, after which the mirror connection is
// closed. Nothing is logged after the channel's close (there is no channel to log for).
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_tee(sluice::Registry& registry);

}  // namespace sluice::builtin
