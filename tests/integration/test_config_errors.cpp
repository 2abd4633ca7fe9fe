// Clear errors: a bad config stops `sluice check` and `sluice run` with exit status 2 and one line
// "sluice: FILE: /json/pointer: message"; nothing stays bound.
#define BOOST_TEST_MODULE config_errors
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cerrno>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

struct Case {
  std::string name;
  std::string content;             // the config file
  std::string path;                // expected JSON pointer ("" when the whole file is at fault)
  std::vector<std::string> words;  // also expected in the message
};

json valid_listener() {
  return {{"name", "l"}, {"listen", "127.0.0.1:1"}, {"upstream", "127.0.0.1:2"}};
}

std::string with(json root) {
  return root.dump(2);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"invalid-json",
                 "{\n  \"listeners\": [\n    {\"listen\": \"127.0.0.1:1\",, }\n  ]\n}\n",
                 "",
                 {"invalid JSON", "line 3", "column"}});
  out.push_back({"unknown-top-level-key",
                 with({{"listeners", {valid_listener()}}, {"bogus", 1}}),
                 "/bogus",
                 {"unknown key"}});
  {
    json l = valid_listener();
    l["bogus"] = true;
    out.push_back({"unknown-listener-key",
                   with({{"listeners", {l}}}),
                   "/listeners/0/bogus",
                   {"unknown key"}});
  }
  out.push_back({"workers-wrong-type",
                 with({{"workers", "two"}, {"listeners", {valid_listener()}}}),
                 "/workers",
                 {"expected an integer"}});
  {
    json l = valid_listener();
    l["listen"] = "127.0.0.1:http";
    out.push_back({"bad-listen", with({{"listeners", {l}}}), "/listeners/0/listen", {"HOST:PORT"}});
  }
  {
    json l = valid_listener();
    l["upstream"] = "127.0.0.1";
    out.push_back(
        {"bad-upstream", with({{"listeners", {l}}}), "/listeners/0/upstream", {"HOST:PORT"}});
  }
  {
    json l = valid_listener();
    l["middlewares"] = {{{"type", "no-such-middleware"}}};
    out.push_back({"unknown-middleware",
                   with({{"listeners", {l}}}),
                   "/listeners/0/middlewares/0/type",
                   {"no-such-middleware", "hexdump"}});
  }
  {
    json l = valid_listener();
    l["middlewares"] = {{{"type", "replace"}, {"to", "x"}}};
    out.push_back({"replace-without-from",
                   with({{"listeners", {l}}}),
                   "/listeners/0/middlewares/0/from",
                   {"missing"}});
  }
  {
    json a = valid_listener(), b = valid_listener();
    b["listen"] = "127.0.0.1:3";
    out.push_back({"duplicate-listener-name",
                   with({{"listeners", {a, b}}}),
                   "/listeners/1/name",
                   {"duplicate", "\"l\""}});
  }
  return out;
}

// The one line sluice printed for a config error, checked for file, path and words.
void check_message(const CommandResult& r, const std::filesystem::path& file, const Case& c) {
  BOOST_TEST(r.exit_code == 2, "output:\n" << r.output);
  const std::string prefix =
      "sluice: " + file.string() + ": " + (c.path.empty() ? std::string() : c.path + ": ");
  const auto at = r.output.find(prefix);
  BOOST_TEST(at != std::string::npos, "expected \"" << prefix << "\" in:\n" << r.output);
  for (const auto& w : c.words)
    BOOST_TEST(r.output.find(w) != std::string::npos, "expected \"" << w << "\" in:\n" << r.output);
}

}  // namespace

BOOST_AUTO_TEST_CASE(check_reports_file_and_json_path) {
  TempDir dir;
  for (const auto& c : cases()) {
    BOOST_TEST_CONTEXT("case " << c.name) {
      const auto file = dir.file(c.name + ".json");
      write_file(file, c.content);
      const auto r = run_sluice({"check", "-c", file.string()});
      check_message(r, file, c);
      // Exactly one line, on stderr (which is where the output file gets it from).
      BOOST_TEST(std::count(r.output.begin(), r.output.end(), '\n') == 1, r.output);
    }
  }
}

BOOST_AUTO_TEST_CASE(run_reports_file_and_json_path) {
  TempDir dir;
  for (const auto& c : cases()) {
    if (c.name != "invalid-json" && c.name != "unknown-middleware" &&
        c.name != "replace-without-from" && c.name != "bad-upstream")
      continue;
    BOOST_TEST_CONTEXT("case " << c.name) {
      const auto file = dir.file(c.name + ".json");
      write_file(file, c.content);
      const auto r = run_sluice({"run", "-c", file.string()});
      check_message(r, file, c);
      BOOST_TEST(r.output.find("sluice ready") == std::string::npos, r.output);
    }
  }
}

BOOST_AUTO_TEST_CASE(missing_file) {
  TempDir dir;
  const auto file = dir.file("does-not-exist.json");
  for (const char* command : {"check", "run"}) {
    BOOST_TEST_CONTEXT(command) {
      const auto r = run_sluice({command, "-c", file.string()});
      BOOST_TEST(r.exit_code == 2, r.output);
      BOOST_TEST(r.output.find("sluice: " + file.string() + ": ") != std::string::npos, r.output);
      BOOST_TEST(r.output.find("cannot read") != std::string::npos, r.output);
    }
  }
}

BOOST_AUTO_TEST_CASE(port_in_use) {
  TempDir dir;
  PortHolder busy;
  auto echo = echo_server();
  const auto file = write_json(
      dir.file("busy.json"),
      {{"listeners",
        {{{"name", "busy"}, {"listen", loopback(busy.port())}, {"upstream", echo->address()}}}}});
  // check binds nothing, so a busy port is no error there.
  const auto checked = run_sluice({"check", "-c", file.string()});
  BOOST_TEST(checked.exit_code == 0, checked.output);

  const auto r = run_sluice({"run", "-c", file.string()});
  BOOST_TEST(r.exit_code == 2, r.output);
  BOOST_TEST(
      r.output.find("sluice: " + file.string() + ": /listeners/0/listen: ") != std::string::npos,
      r.output);
  BOOST_TEST(r.output.find("in use") != std::string::npos, r.output);
  BOOST_TEST(r.output.find("sluice ready") == std::string::npos, r.output);
}

// The first listener binds fine, the second cannot: start-up fails and releases the first.
BOOST_AUTO_TEST_CASE(nothing_stays_bound_after_a_failed_start) {
  TempDir dir;
  PortHolder busy;
  auto echo = echo_server();
  const auto first = free_port();
  const auto file = write_json(
      dir.file("half-busy.json"),
      {{"listeners",
        {{{"name", "first"}, {"listen", loopback(first)}, {"upstream", echo->address()}},
         {{"name", "second"}, {"listen", loopback(busy.port())}, {"upstream", echo->address()}}}}});
  const auto r = run_sluice({"run", "-c", file.string()});
  BOOST_TEST(r.exit_code == 2, r.output);
  BOOST_TEST(r.output.find("/listeners/1/listen: ") != std::string::npos, r.output);
  BOOST_TEST(r.output.find("in use") != std::string::npos, r.output);

  // Nothing listens on the first port any more, and it can be bound again.
  int error = 0;
  auto probe = Socket::try_connect(first, error, 5s);
  BOOST_TEST(!probe.has_value(), "something still accepts on " << loopback(first));
  BOOST_TEST(error == ECONNREFUSED);
  BOOST_TEST(!port_listening(first));
  BOOST_TEST(port_bindable(first));
  BOOST_TEST(echo->accepted() == 0u);
}

// A config that is refused, or only checked, leaves no trace on disk: the middlewares that write
// files (capture, record, access-log) create them when the config goes into service, not when it
// is read. Their checks still run: a path that cannot be written is an error for `check` too.
BOOST_AUTO_TEST_CASE(a_refused_or_checked_config_creates_no_file) {
  TempDir dir;
  PortHolder busy;
  auto echo = echo_server();
  const auto writers = json::array({
      {{"type", "capture"}, {"path", dir.file("traffic.pcap").string()}},
      {{"type", "capture"}, {"path", dir.file("pcaps/a/").string()}},
      {{"type", "record"}, {"path", dir.file("recording.jsonl").string()}},
      {{"type", "record"}, {"path", dir.file("recordings/").string()}},
      {{"type", "access-log"}, {"path", dir.file("access.log").string()}},
  });
  auto listener = [&](std::uint16_t port) {
    return json{{"name", "writes"},
                {"listen", loopback(port)},
                {"upstream", echo->address()},
                {"middlewares", writers}};
  };
  auto nothing_created = [&](const std::string& what) {
    for (auto& entry : std::filesystem::directory_iterator(dir.path()))
      if (entry.path().filename() != "config.json")
        BOOST_ERROR(what << " created " << entry.path());
  };
  const auto file = dir.file("config.json");

  write_json(file, {{"listeners", {listener(free_port())}}});
  const auto checked = run_sluice({"check", "-c", file.string()});
  BOOST_TEST(checked.exit_code == 0, checked.output);
  nothing_created("sluice check");

  // A later key is wrong.
  json later = {{"listeners", {listener(free_port())}}};
  later["listeners"][0]["middlewares"].push_back({{"type", "replace"}, {"to", "x"}});
  write_json(file, later);
  for (const char* command : {"check", "run"}) {
    const auto r = run_sluice({command, "-c", file.string()});
    BOOST_TEST(r.exit_code == 2, r.output);
    BOOST_TEST(contains(r.output, "/listeners/0/middlewares/5/from: missing"), r.output);
    nothing_created(std::string("sluice ") + command + " of a bad config");
  }

  // The address is taken.
  write_json(file, {{"listeners", {listener(busy.port())}}});
  const auto r = run_sluice({"run", "-c", file.string()});
  BOOST_TEST(r.exit_code == 2, r.output);
  BOOST_TEST(contains(r.output, "in use"), r.output);
  nothing_created("sluice run on a busy port");

  // A path that cannot be written is refused by the check, still without creating anything.
  write_file(dir.file("plain"), "a file, not a folder");
  json unwritable = {{"listeners", {listener(free_port())}}};
  unwritable["listeners"][0]["middlewares"][3]["path"] = dir.file("plain/recordings/").string();
  write_json(file, unwritable);
  const auto refused = run_sluice({"check", "-c", file.string()});
  BOOST_TEST(refused.exit_code == 2, refused.output);
  BOOST_TEST(contains(refused.output, "/listeners/0/middlewares/3/path: cannot create the folder"),
             refused.output);
  BOOST_TEST(contains(refused.output, "Not a directory"), refused.output);
  std::filesystem::remove(dir.file("plain"));
  nothing_created("sluice check of an unwritable path");
}
