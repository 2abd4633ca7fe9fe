#pragma once
// Middleware: the per-channel object that sees a channel's events and bytes, created by its
// listener's MiddlewareFactory for every accepted client. Hooks run on the channel's worker
// thread, one at a time, so a middleware needs no locks for its own state.
//
// Order: on_open once; on_connected once the upstream connection is up (never if it never is);
// on_data/on_end per direction (upstream in config order, downstream in reverse), which may
// start before on_connected; on_close once, last, whatever happened before (even if on_open threw
// or rejected).
// A hook that throws closes its channel with the exception's message; other channels go on.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "sluice/chunk.hpp"
#include "sluice/context.hpp"

namespace sluice {

enum class Verdict : std::uint8_t {
  pass,   // the chunk (as left by the middleware) goes on; an empty one stops here on a byte
          // stream, but is an empty message after a layer (use drop to discard)
  hold,   // the engine keeps the chunk at this middleware and stops reading this direction
          // until ctx.resume(dir); use it to delay or pace bytes
  close,  // close the channel
  drop,   // the chunk stops here. On a byte stream the same as passing an empty chunk; after a
          // layer (ctx.messages()) an empty chunk is an empty message, and drop discards it
};

struct CloseInfo {
  std::string_view reason;  // "client closed", "upstream connect failed: ...", ...
  bool upstream_connected;
  std::uint64_t bytes_from_client;
  std::uint64_t bytes_to_upstream;
  std::uint64_t bytes_from_upstream;
  std::uint64_t bytes_to_client;
  std::chrono::nanoseconds duration;
};

class Middleware {
 public:
  virtual ~Middleware() = default;
  // The client was accepted. May set the upstream, defer the connect, or ctx.close() to reject.
  virtual void on_open(Context&) {}
  // The upstream connection is established; ctx.upstream_address() is the address connected to.
  virtual void on_connected(Context&) {}
  virtual Verdict on_data(Context&, Direction, Chunk&) { return Verdict::pass; }
  // The sender of `dir` finished (half-close), after its last on_data. Bytes sent from here still
  // go out before the FIN is forwarded.
  virtual void on_end(Context&, Direction) {}
  virtual void on_close(Context&, const CloseInfo&) {}
};

// Made once per listener when the config is loaded (and again on reload); validates options
// there so a bad option is a start-up error, and acts in start(). create() is called from every
// worker thread, so it must be safe to call concurrently; the factory outlives every middleware it
// created.
class MiddlewareFactory {
 public:
  virtual ~MiddlewareFactory() = default;
  virtual std::unique_ptr<Middleware> create() = 0;

  // A layer (a framing codec, later TLS) changes what the middlewares after it see: it decodes at
  // its own place and must encode again where bytes leave towards the upstream, and the other way
  // round downstream. Its factory returns here, for each `client_side` it created, the partner
  // that the pipeline runs at the server edge of the chain: after every other middleware
  // upstream, before all of them downstream. Layers nest (the first layer's edge is outermost).
  // Every other factory returns nullptr.
  virtual std::unique_ptr<Middleware> create_server_edge(Middleware& client_side) {
    (void)client_side;
    return nullptr;
  }

  // Whether its middlewares need on_data. A factory returns false only if every middleware it
  // creates would pass each chunk on untouched (an access log, a connection counter). When no
  // middleware of a chain needs the bytes, the engine moves them without calling on_data, and a
  // bulk transfer goes from socket to socket with splice(2), never copied into user space; every
  // other hook is still called, and CloseInfo still counts the bytes.
  virtual bool sees_bytes() const { return true; }

  // The config goes into service: called once, after every factory and extension of it was made
  // and every listener bound, never by `sluice check`. Effects beyond checking belong here
  // (creating a file, a folder), so that a config refused anywhere leaves no trace
  // (sluice/output_path.hpp checks a path without creating it). A throw refuses the config: at
  // start-up sluice exits 2, a reload keeps the previous config; ConfigError names its JSON path.
  virtual void start() {}
};

}  // namespace sluice
