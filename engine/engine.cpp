#include "engine.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>

#include "channel.hpp"
#include "log.hpp"

namespace sluice {

namespace asio = boost::asio;

namespace {

std::string chain_of(const ListenerSpec& spec) {
  std::string out;
  for (const auto& t : spec.types) out += (out.empty() ? "" : ", ") + t;
  return "[" + out + "]";
}

void log_listening(const Listener& l, const Config& config) {
  const auto& c = l.spec().config;
  spdlog::info("listener {}: listening on {} -> {} {}, {}", c.name, to_string(l.address()),
               c.upstream ? c.upstream->str() : "(set by middleware)", chain_of(l.spec()),
               data_path(l.spec(), config));
}

}  // namespace

Engine::Engine(Runtime runtime, Extensions& extensions, Reload reload)
    : runtime_(std::move(runtime)), extensions_(extensions), reload_(std::move(reload)) {
  for (unsigned i = 0; i < runtime_.config.workers; ++i)
    workers_.push_back(std::make_unique<Worker>(i, runtime_.config.max_pipes,
                                                runtime_.config.busy_poll, *lookup_));
}

Engine::~Engine() {
  listeners_.clear();
  for (auto& w : workers_) {
    w->stop();
    if (w->thread.joinable()) w->thread.join();
  }
  // Before the workers go: a lookup in progress posts its answer to one of them.
  lookup_->stop();
}

std::vector<std::unique_ptr<Listener>> Engine::bind_all(
    const Runtime& rt, std::vector<std::unique_ptr<Listener>>& keep) {
  // First bind every new address, so a failure leaves everything as it was.
  std::vector<std::unique_ptr<Listener>> fresh(rt.listeners.size());
  std::vector<Listener*> reused(rt.listeners.size(), nullptr);
  for (std::size_t i = 0; i < rt.listeners.size(); ++i) {
    const auto& spec = rt.listeners[i];
    const auto& want = spec->config.listen;
    for (auto& l : keep)
      if (l && want.port() != 0 && l->spec().config.listen == want) reused[i] = l.get();
    if (reused[i]) continue;
    auto cannot_listen = [&](const std::string& why) {
      return FileConfigError(rt.config.source,
                             ConfigError(spec->config.path + "/listen",
                                         "cannot listen on " + to_string(want) + ": " + why));
    };
    try {
      fresh[i] = std::make_unique<Listener>(workers_, spec);
    } catch (const std::system_error& e) {
      throw cannot_listen(e.code().message());
    } catch (const boost::system::system_error& e) {
      // What Asio's acceptor throws (bind: "Address already in use"); not a std::system_error.
      throw cannot_listen(e.code().message());
    }
  }
  // Only now act beyond the network: a config whose address is taken creates no file.
  start_middlewares(rt);
  std::vector<std::unique_ptr<Listener>> out;
  for (std::size_t i = 0; i < rt.listeners.size(); ++i) {
    if (fresh[i]) {
      out.push_back(std::move(fresh[i]));
      continue;
    }
    for (auto& l : keep)
      if (l.get() == reused[i]) {
        l->update(rt.listeners[i]);
        out.push_back(std::move(l));
      }
  }
  return out;
}

void Engine::bind() {
  std::vector<std::unique_ptr<Listener>> none;
  listeners_ = bind_all(runtime_, none);
}

std::size_t Engine::live_channels() const {
  std::size_t n = 0;
  for (const auto& w : workers_) n += w->live.load();
  return n;
}

void Engine::reload() {
  spdlog::info("SIGHUP: reloading {}", runtime_.config.source);
  Runtime next;
  try {
    next = reload_();
    if (next.config.workers != runtime_.config.workers)
      spdlog::warn("reload: \"workers\" changes take effect at the next start");
    if (next.config.max_pipes != runtime_.config.max_pipes)
      spdlog::warn("reload: \"max_pipes\" changes take effect at the next start");
    if (next.config.busy_poll != runtime_.config.busy_poll)
      spdlog::warn("reload: \"busy_poll_us\" changes take effect at the next start");
    if (next.config.extensions != extensions_.source)
      spdlog::warn("reload: \"extensions\" changes take effect at the next start");
    next.config.workers = runtime_.config.workers;
    next.config.max_pipes = runtime_.config.max_pipes;
    next.config.busy_poll = runtime_.config.busy_poll;
    auto old = std::move(listeners_);
    try {
      listeners_ = bind_all(next, old);
    } catch (...) {
      listeners_ = std::move(old);
      throw;
    }
    for (auto& l : old)
      if (l) spdlog::info("listener {}: closed by reload", l->spec().config.name);
    old.clear();  // stops accepting on dropped addresses; their channels go on
  } catch (const std::exception& e) {
    spdlog::error("reload failed, the previous config stays in force: {}", e.what());
    return;
  }
  for (auto& l : listeners_) {
    l->start();  // a reused listener is already accepting; start() only runs new loops
    log_listening(*l, runtime_.config);
  }
  runtime_ = std::move(next);
  spdlog::info("reload done: {} listener(s)", listeners_.size());
}

int Engine::run() {
  // Handle the signals before anything can tell the world we are ready: a SIGHUP or SIGTERM sent
  // right after "sluice ready:" must reach the handler below, not the default action (exit).
  asio::io_context main;
  asio::signal_set signals(main, SIGINT, SIGTERM, SIGHUP);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->thread = std::thread([worker] {
      for (;;) {
        try {
          worker->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("worker {}: unexpected exception: {}", worker->index, e.what());
        }
      }
    });
  }
  extensions_.start();
  for (auto& l : listeners_) {
    l->start();
    log_listening(*l, runtime_.config);
  }
  const auto busy_us = runtime_.config.busy_poll.count();
  spdlog::info("sluice ready: {} listener(s), {} worker(s){}", listeners_.size(), workers_.size(),
               busy_us ? fmt::format(", each polling up to {} us before it sleeps", busy_us) : "");

  asio::steady_timer tick(main);
  bool draining = false, aborted = false;
  Clock::time_point deadline;

  auto abort_all = [this, &aborted, &deadline](const char* why) {
    aborted = true;
    deadline = Clock::now() + std::chrono::seconds(5);
    spdlog::warn("closing {} open channel(s): {}", live_channels(), why);
    for (auto& w : workers_)
      w->post([worker = w.get(), why] {
        for (auto& ch : worker->channels) ch.stop(why);
      });
  };
  std::function<void()> poll = [&] {
    if (live_channels() == 0) return main.stop();
    if (!aborted && Clock::now() >= deadline)
      abort_all("shutdown: drain timeout");
    else if (aborted && Clock::now() >= deadline) {
      spdlog::error("{} channel(s) did not close; stopping anyway", live_channels());
      return main.stop();
    }
    tick.expires_after(std::chrono::milliseconds(20));
    tick.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll();
    });
  };
  std::function<void()> on_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP && !draining) {
        reload();
      } else if (!draining) {
        draining = true;
        spdlog::info("{}: stopping; draining {} open channel(s) for up to {} ms",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", live_channels(),
                     runtime_.config.drain_timeout.count());
        listeners_.clear();
        deadline = Clock::now() + runtime_.config.drain_timeout;
        poll();
      } else if (!aborted && sig != SIGHUP) {
        abort_all("shutdown: second signal");
      }
      on_signal();
    });
  };
  on_signal();
  main.run();

  for (auto& w : workers_) {
    w->stop();
    w->thread.join();
  }
  extensions_.stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace sluice
