// The README's "Debug a protocol with sluice" block, run as written (with this build's binary and
// this checkout's config): a user who copies it sees what the README says they will.
#define BOOST_TEST_MODULE howto
#include <boost/test/unit_test.hpp>

#include "support.hpp"

using namespace it;

namespace {

const std::filesystem::path kSource = SLUICE_SOURCE_DIR;

// The ```sh block between the it_howto markers of the README.
std::string howto_block() {
  const std::string readme = read_file(kSource / "README.md");
  const auto begin = readme.find("<!-- it_howto: begin -->");
  const auto end = readme.find("<!-- it_howto: end -->");
  if (begin == std::string::npos || end == std::string::npos || end < begin)
    throw std::runtime_error("README.md has no it_howto block");
  const auto open = readme.find("```sh\n", begin);
  const auto close = readme.rfind("```", end);
  if (open == std::string::npos || close == std::string::npos || close <= open)
    throw std::runtime_error("the it_howto block has no ```sh fence");
  return readme.substr(open + 6, close - open - 6);
}

void replace_all(std::string& s, std::string_view from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

}  // namespace

BOOST_AUTO_TEST_CASE(debug_a_protocol_as_the_readme_shows) {
  std::string block = howto_block();
  replace_all(block, "build/bin/sluice", binary());
  replace_all(block, "config/examples/", (kSource / "config/examples/").string());
  TempDir dir;
  // Whatever happens, the proxy the block starts in the background goes with the script.
  const std::string script =
      "cd '" + dir.path().string() + "'\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + block;
  write_file(dir.file("howto.sh"), script);
  const auto r =
      run_command({"/usr/bin/timeout", "120", "/bin/bash", dir.file("howto.sh").string()}, 150s);
  const std::string& out = r.output;
  BOOST_TEST_MESSAGE("howto output:\n" << out);
  BOOST_TEST(r.exit_code == 0, "exit " << r.exit_code << "\n" << out);
  // The client got the server's answer to the rewritten line.
  BOOST_TEST(contains(out, "USER guest\r\nPING\r\n"));
  // tshark follows the client's side: what the client sent (before rewrite) and what it got.
  BOOST_TEST(contains(out, "Follow: tcp,ascii"));
  BOOST_TEST(contains(out, "USER alice"));
  // hexdump after frame: one numbered message per line.
  BOOST_TEST(contains(out, "upstream message 1 length 10"));
  // Replay: straight to the server it differs where rewrite acted; through sluice it matches.
  BOOST_TEST(contains(out, "differs: channel 1, first difference at offset 5"));
  BOOST_TEST(contains(out, "match: channel 1"));
  BOOST_TEST(!std::filesystem::exists(kSource / "sluice-debug.log"));
}
