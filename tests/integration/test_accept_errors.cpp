// accept(2) errors that belong to one queued client (it was reset while queued, a firewall
// refused it: accept(2) says to retry) skip that client; the listener goes on accepting at once
// and other clients never notice. Injected by an LD_PRELOAD shim (fault/accept4_errors.cpp),
// so this test is not built with the sanitizers, whose runtime must come first in the process.
#define BOOST_TEST_MODULE accept_errors
#include <stdlib.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstring>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// Sets the environment for the processes started while it lives.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_client_lost_before_accept_is_skipped_without_a_pause) {
  auto echo = echo_server();
  TempDir dir;
  const auto port = free_port();
  const auto file =
      write_json(dir.file("proxy.json"),
                 {{"workers", 1},
                  {"listeners",
                   {{{"name", "l"}, {"listen", loopback(port)}, {"upstream", echo->address()}}}}});
  const std::vector<std::string> errors = {"ECONNABORTED", "EPERM", "EPROTO", "ENETUNREACH"};
  std::unique_ptr<Sluice> sluice;
  {
    ScopedEnv preload("LD_PRELOAD", SLUICE_FAULT_ACCEPT4_SHIM);
    ScopedEnv plan("SLUICE_FAULT_ACCEPT4", "ECONNABORTED,EPERM,EPROTO,ENETUNREACH");
    sluice = Sluice::run_config(file, {"--log-level", "debug"});
  }
  // Each of the first clients is accepted, reset by the shim and reported to sluice as lost.
  for (const auto& error : errors) {
    BOOST_TEST_CONTEXT(error) {
      // The reset may come before the client's connect() has returned.
      int connect_error = 0;
      auto lost = Socket::try_connect(port, connect_error);
      if (!lost) {
        BOOST_TEST(connect_error == ECONNRESET, std::strerror(connect_error));
        continue;
      }
      lost->send_all("lost");
      std::string got;
      const End end = lost->recv_to_end(got);
      BOOST_TEST((end == End::reset || end == End::eof), to_string(end));
      BOOST_TEST(got.empty());
    }
  }
  BOOST_TEST(sluice->wait_for_log("a queued client was lost before accept", kWait, errors.size()),
             sluice->log());
  // The next client is served, and the listener never paused for the lost ones.
  Socket served = Socket::connect(port);
  BOOST_TEST(roundtrip(served, "served") == "served");
  BOOST_TEST(!contains(sluice->log(), "accept failed"), sluice->log());
  BOOST_TEST(echo->accepted() == 1u);
  served.close();
  BOOST_TEST(sluice->stop() == 0, sluice->log());
}
