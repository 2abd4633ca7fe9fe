#pragma once
// Engine: owns the workers, the listeners and the signal handling of a running proxy.
//   start: bind every listener (nothing accepted yet), start its middlewares (files), start the
//          extensions, start accepting.
//   SIGHUP: `reload` builds a new Runtime; listeners whose address is unchanged keep their
//           sockets and take the new chain, new addresses are bound, dropped ones closed; on any
//           error the old runtime stays in force.
//   SIGINT/SIGTERM: stop accepting, let channels finish for drain_timeout, then close the rest
//           (a second signal closes them at once); stop the extensions; exit 0.
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "channel.hpp"  // Worker::channels needs Channel complete
#include "listener.hpp"
#include "runtime.hpp"
#include "worker.hpp"

namespace sluice {

class Engine {
 public:
  // Returns the new runtime, or throws (FileConfigError, PluginError, ...) to keep the old one.
  using Reload = std::function<Runtime()>;

  Engine(Runtime runtime, Extensions& extensions, Reload reload);
  ~Engine();
  // Binds the listeners; throws FileConfigError naming the listener if an address is unusable.
  void bind();
  // Runs until SIGINT/SIGTERM and the drain are over. Returns the exit status.
  int run();

 private:
  void reload();
  // Binds rt's new addresses, starts its middlewares, then moves the listeners of `keep` whose
  // address stays into the result with rt's specs. A failure leaves `keep` as it was.
  std::vector<std::unique_ptr<Listener>> bind_all(const Runtime& rt,
                                                  std::vector<std::unique_ptr<Listener>>& keep);
  std::size_t live_channels() const;

  Runtime runtime_;
  Extensions& extensions_;
  Reload reload_;
  std::unique_ptr<Lookup> lookup_ = std::make_unique<Lookup>();  // before the workers that use it
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
};

}  // namespace sluice
