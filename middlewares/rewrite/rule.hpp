#pragma once
// One rewrite rule (a Boost.Regex in Perl syntax and a Perl-style replacement) and RuleStream, the
// rule applied to one direction of one channel: either to whole messages, or to a byte stream
// that arrives in arbitrary pieces, where it holds back the tail that could still start a match.
//
// Stream contract: RuleStream::feed(in, more) rewrites the stream seen so far except for a held
// tail of at most `window` bytes, which starts where a match could still begin (Boost's
// match_partial) or at a match that could still change: one that reaches the last byte, or one
// whose search looked at the last byte (`abc|a` on "ab"; see Rule::probe). Over a whole stream
// the output equals boost::regex_replace over the whole input (format_perl), except that a match
// longer than `window` is not found (or is cut short if it had begun `window` bytes before the
// end of what was received), lookbehind and \b see at most kLookBehind bytes before the held
// tail, and \Z matches only at the very end. feed(in, flush) and feed(in, end) release
// everything; only `end` lets `$`, `\b` and `\z` match at the last byte.
//
// Boost.Regex rather than std::regex: libstdc++'s std::regex recurses for every byte a repeat takes
// (GCC bug 86164: a long input overflows the stack, killing the process), is many times slower, has
// no partial matching, which the stream mode is built on. Boost.Regex matches without recursion and
// throws std::runtime_error when a match gets too complex, which closes only the channel concerned.
#include <boost/regex.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "sluice/context.hpp"

namespace sluice::builtin::rewrite {

// Perl syntax, `.` does not match "\n" (as in Perl); `^` and `$` match at line ends (Boost's
// default, unlike Perl: `\A` and `\z` anchor to the start and end of a message or stream).
inline constexpr boost::regex::flag_type kSyntax = boost::regex::perl | boost::regex::no_mod_s;

// How many already released bytes a stream keeps for assertions that look back.
inline constexpr std::size_t kLookBehind = 64;

struct Rule {
  // Compiles `pattern` (throws boost::regex_error if it is not a valid regex).
  explicit Rule(std::string where, const std::string& pattern);

  std::string where;  // JSON path of the rule, for messages about it
  boost::regex regex;
  // `(?>pattern)(?!)` never matches, but a partial search with it where a match begins tells
  // whether finding that match looked at the end of the bytes so far (Boost flags a state that
  // failed there), so that it may change when more arrive; the atomic group stops the search at
  // the first match, as the real search does. Empty if the wrapping does not compile (a pattern
  // ending in an (?x) comment): then every match near the end is taken as one that may change.
  boost::regex probe;
  std::string replacement;  // Perl format: $&, $1, ${10}, $+{name}, $$, \n, \U...\E
  bool upstream = true;
  bool downstream = true;
  std::uint64_t max_matches = std::numeric_limits<std::uint64_t>::max();

  bool applies(Direction d) const { return d == Direction::upstream ? upstream : downstream; }
};

class RuleStream {
 public:
  enum class Until {
    more,   // more bytes may follow: hold back what could still become or grow a match
    flush,  // release everything, but the stream goes on (no end-of-stream anchors)
    end,    // the stream ends here
  };

  explicit RuleStream(const Rule& rule) : rule_(&rule) {}

  // Appends to `out` what of held + `in` is settled. `in` must not alias `out`.
  void feed(std::string_view in, Until until, std::size_t window, std::string& out);
  // Appends to `out` the rewritten message `in` (a whole message: no state but the match count).
  void message(std::string_view in, std::string& out);

  std::size_t held() const { return held_.size(); }
  std::uint64_t matches() const { return matches_; }

 private:
  const Rule* rule_;
  std::uint64_t matches_ = 0;
  std::string context_;  // the last released bytes (up to kLookBehind) before held_
  std::string held_;
  bool context_from_start_ = true;  // context_ begins at the stream's first byte
  bool null_at_held_ = false;       // an empty match was already replaced where held_ begins
};

}  // namespace sluice::builtin::rewrite
