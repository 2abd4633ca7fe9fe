#include "rewrite/rule.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace sluice::builtin::rewrite {
namespace {

namespace rc = boost::regex_constants;
using Match = boost::match_results<const char*>;

// Where a scan starts and what it may assume about the bytes around it.
struct Span {
  std::string_view buf;     // look-behind context, then the bytes to rewrite
  std::size_t start;        // first byte to rewrite
  bool buf_is_start;        // buf[0] is the first byte of the stream or message
  bool null_at_start;       // an empty match at `start` was already replaced
  RuleStream::Until until;  // what may follow buf
  std::size_t window;       // longest tail to hold back (Until::more only)
};

struct Scanned {
  std::size_t hold;   // bytes from here on are held back (buf.size(): none)
  bool null_at_hold;  // the last replaced match was empty and sat at `hold`
};

// Whether the match `m` could differ once bytes follow `end`. One that reaches the end may grow
// (`\d+` on "12"; Boost gives no sign of a repeat that stopped there), so it waits. For one that
// ends before, the probe tells whether finding it looked at the end: an earlier alternative or a
// lookahead that needed more bytes.
bool may_change(const Rule& rule, const Match& m, const char* base, const char* end,
                rc::match_flag_type flags) {
  if (m[0].second == end || rule.probe.empty()) return true;
  Match p;
  return boost::regex_search(m[0].first, end, p, rule.probe,
                             flags | rc::match_partial | rc::match_continuous, base);
}

// Rewrites buf[start, hold) into `out`, the way boost::regex_iterator walks matches (after an
// empty match, the next one may not be empty at the same place), and finds `hold`.
Scanned scan(const Rule& rule, const Span& s, std::uint64_t& matches, std::string& out) {
  const char* const base = s.buf.data();
  const char* const end = base + s.buf.size();
  rc::match_flag_type common = rc::match_default;
  // base is the backstop for lookbehind; when it is not the real start, ^, \A and \b must not
  // match there (match_prev_avail would read before base).
  if (!s.buf_is_start) common |= rc::match_not_bob | rc::match_not_bol | rc::match_not_bow;
  // Unless the stream ends here, the last byte is not the end of a line, word or buffer.
  if (s.until != RuleStream::Until::end)
    common |= rc::match_not_eob | rc::match_not_eol | rc::match_not_eow;
  const bool more = s.until == RuleStream::Until::more;
  // A match beginning before `edge` would be longer than the window: it is not waited for.
  const std::size_t edge = s.buf.size() > s.window ? s.buf.size() - s.window : 0;

  std::size_t pos = s.start, copied = s.start, hold = s.buf.size();
  bool null_at_pos = s.null_at_start;
  Match m;
  while (matches < rule.max_matches) {
    const auto flags_at = [&](std::size_t from) {
      return from == pos && null_at_pos ? common | rc::match_not_initial_null : common;
    };
    bool found = boost::regex_search(base + pos, end, m, rule.regex, flags_at(pos), base);
    if (more) {
      // The first full match is final if it begins before the window. Otherwise what begins
      // within the window is asked again with partial matches allowed: the leftmost place that
      // could still match, or a full match that could still change, is held.
      const std::size_t from = std::max(pos, edge);
      if (!found || static_cast<std::size_t>(m[0].first - base) >= from) {
        found = boost::regex_search(base + from, end, m, rule.regex,
                                    flags_at(from) | rc::match_partial, base);
        if (found &&
            (!m[0].matched || may_change(rule, m, base, end,
                                         flags_at(static_cast<std::size_t>(m[0].first - base))))) {
          hold = static_cast<std::size_t>(m[0].first - base);
          break;
        }
      }
    }
    if (!found) break;
    const auto first = static_cast<std::size_t>(m[0].first - base);
    out.append(s.buf.substr(copied, first - copied));
    m.format(std::back_inserter(out), rule.replacement, rc::format_perl, rule.regex);
    ++matches;
    pos = copied = static_cast<std::size_t>(m[0].second - base);
    null_at_pos = m[0].first == m[0].second;
  }
  out.append(s.buf.substr(copied, hold - copied));
  return {hold, null_at_pos && pos == hold};
}

// A regex that gives up (too complex for this input) ends the channel, named by the rule.
[[noreturn]] void gave_up(const Rule& rule, const std::exception& e) {
  throw std::runtime_error("rule " + rule.where + " gave up: " + e.what());
}

}  // namespace

Rule::Rule(std::string where_, const std::string& pattern)
    : where(std::move(where_)), regex(pattern, kSyntax) {
  try {
    probe.assign("(?>" + pattern + ")(?!)", kSyntax);
  } catch (const boost::regex_error&) {
    probe = boost::regex();
  }
}

void RuleStream::feed(std::string_view in, Until until, std::size_t window, std::string& out) {
  if (matches_ >= rule_->max_matches) {  // spent: the rule is out of the way
    out.append(held_);
    out.append(in);
    held_.clear();
    return;
  }
  // Shared by the worker's channels: nothing here can re-enter, and it stops allocating once warm.
  thread_local std::string buf;
  buf.assign(context_);
  buf.append(held_);
  buf.append(in);
  Scanned r{};
  try {
    r = scan(*rule_, {buf, context_.size(), context_from_start_, null_at_held_, until, window},
             matches_, out);
  } catch (const std::runtime_error& e) {
    gave_up(*rule_, e);
  }
  held_.assign(buf, r.hold);
  null_at_held_ = r.null_at_hold;
  const std::size_t keep = std::min(r.hold, kLookBehind);
  context_from_start_ = context_from_start_ && keep == r.hold;
  context_.assign(buf, r.hold - keep, keep);
}

void RuleStream::message(std::string_view in, std::string& out) {
  try {
    scan(*rule_, {in, 0, true, false, Until::end, in.size()}, matches_, out);
  } catch (const std::runtime_error& e) {
    gave_up(*rule_, e);
  }
}

}  // namespace sluice::builtin::rewrite
