#pragma once
// Options: reads one JSON object of a config (a middleware's, an extension's, the engine's own)
// and turns every mistake into a ConfigError naming the JSON pointer of the offending value and
// what was expected. Call finish() last: any key nobody asked for is reported as unknown.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sluice {

class ConfigError : public std::runtime_error {
 public:
  // `path`: the JSON pointer of the offending value ("" when the problem is the whole file).
  ConfigError(std::string path, std::string message)
      : std::runtime_error(path.empty() ? message : path + ": " + message),
        path_(std::move(path)),
        message_(std::move(message)) {}
  const std::string& path() const { return path_; }
  const std::string& message() const { return message_; }

 private:
  std::string path_;
  std::string message_;
};

class Options {
 public:
  using Json = nlohmann::json;

  // `path` is the JSON pointer of `object` in its file ("" for the root).
  Options(const Json& object, std::string path) : json_(object), path_(std::move(path)) {
    if (!json_.is_object()) throw ConfigError(path_, "expected an object, got " + describe(json_));
  }

  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const { return path_ + "/" + escape(key); }
  bool has(std::string_view key) const { return json_.contains(key); }
  const Json& json() const { return json_; }

  // T: bool, an integer type (range-checked), double, std::string, std::vector<std::string>.
  template <class T>
  T get(std::string_view key, T fallback) {
    if (!take(key)) return fallback;
    return convert<T>(json_.at(std::string(key)), path_of(key));
  }
  template <class T>
  T require(std::string_view key) {
    if (!take(key)) throw ConfigError(path_of(key), "missing (required)");
    return convert<T>(json_.at(std::string(key)), path_of(key));
  }
  template <class T>
  std::optional<T> optional(std::string_view key) {
    if (!take(key)) return std::nullopt;
    return convert<T>(json_.at(std::string(key)), path_of(key));
  }

  // A string that must be one of `choices`.
  std::string choice(std::string_view key, std::initializer_list<std::string_view> choices,
                     std::string_view fallback) {
    std::string v = get<std::string>(key, std::string(fallback));
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
      std::string list;
      for (auto c : choices) list += (list.empty() ? "\"" : ", \"") + std::string(c) + "\"";
      throw ConfigError(path_of(key), "expected one of " + list + ", got \"" + v + "\"");
    }
    return v;
  }

  // A duration: a number of seconds (5, 0.25) or a string with a unit ("250ms", "5s", "15m",
  // "1h"). Negative values are refused.
  std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds fallback) {
    if (!take(key)) return fallback;
    return parse_duration(json_.at(std::string(key)), path_of(key));
  }
  // A byte size: a number of bytes or a string with a unit ("64KiB", "1MiB", "2GiB", "1000B").
  std::uint64_t size(std::string_view key, std::uint64_t fallback) {
    if (!take(key)) return fallback;
    return parse_size(json_.at(std::string(key)), path_of(key));
  }

  // A nested object or array element, read with the same rules.
  Options object(std::string_view key) {
    if (!take(key)) throw ConfigError(path_of(key), "missing (required)");
    return Options(json_.at(std::string(key)), path_of(key));
  }
  // Marks a key as read without reading it (the caller deals with it by hand).
  void accept(std::string_view key) { seen_.insert(std::string(key)); }

  [[noreturn]] void fail(std::string_view key, const std::string& message) const {
    throw ConfigError(key.empty() ? path_ : path_of(key), message);
  }

  // Reports the first key that nothing read.
  void finish() const {
    for (auto it = json_.begin(); it != json_.end(); ++it)
      if (!seen_.count(it.key())) throw ConfigError(path_of(it.key()), "unknown key");
  }

  static std::string describe(const Json& j) {
    switch (j.type()) {
      case Json::value_t::null:
        return "null";
      case Json::value_t::boolean:
        return "a boolean";
      case Json::value_t::string:
        return "a string";
      case Json::value_t::array:
        return "an array";
      case Json::value_t::object:
        return "an object";
      case Json::value_t::number_float:
        return "a number";
      default:
        return "an integer";
    }
  }
  static std::string escape(std::string_view key) {
    std::string out;
    for (char c : key) {
      if (c == '~')
        out += "~0";
      else if (c == '/')
        out += "~1";
      else
        out += c;
    }
    return out;
  }

  template <class T>
  static T convert(const Json& j, const std::string& path) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!j.is_boolean()) throw ConfigError(path, "expected a boolean, got " + describe(j));
      return j.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!j.is_number_integer())
        throw ConfigError(path, "expected an integer, got " + describe(j));
      if (j.is_number_unsigned()) {
        auto v = j.get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
          throw ConfigError(
              path, "expected an integer at most " + std::to_string(std::numeric_limits<T>::max()));
        return static_cast<T>(v);
      }
      auto v = j.get<std::int64_t>();
      if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
          (v > 0 && static_cast<std::uint64_t>(v) > std::numeric_limits<T>::max()))
        throw ConfigError(path, "expected an integer from " +
                                    std::to_string(std::numeric_limits<T>::min()) + " to " +
                                    std::to_string(std::numeric_limits<T>::max()));
      return static_cast<T>(v);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!j.is_number()) throw ConfigError(path, "expected a number, got " + describe(j));
      return j.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!j.is_string()) throw ConfigError(path, "expected a string, got " + describe(j));
      return j.get<std::string>();
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (!j.is_array())
        throw ConfigError(path, "expected an array of strings, got " + describe(j));
      std::vector<std::string> out;
      for (std::size_t i = 0; i < j.size(); ++i)
        out.push_back(convert<std::string>(j[i], path + "/" + std::to_string(i)));
      return out;
    } else {
      static_assert(sizeof(T) == 0, "unsupported option type");
    }
  }

  static std::chrono::milliseconds parse_duration(const Json& j, const std::string& path) {
    const char* expect =
        "expected a duration: seconds as a number, or a string like \"250ms\", "
        "\"5s\", \"15m\", \"1h\"";
    double seconds = 0;
    if (j.is_number()) {
      seconds = j.get<double>();
    } else if (j.is_string()) {
      std::string s = j.get<std::string>();
      std::size_t end = 0;
      try {
        seconds = std::stod(s, &end);
      } catch (const std::exception&) {
        throw ConfigError(path, std::string(expect) + ", got \"" + s + "\"");
      }
      std::string unit = s.substr(end);
      if (unit == "ms")
        seconds /= 1000;
      else if (unit == "s" || unit.empty()) {
      } else if (unit == "m")
        seconds *= 60;
      else if (unit == "h")
        seconds *= 3600;
      else
        throw ConfigError(path, std::string(expect) + ", got \"" + s + "\"");
    } else {
      throw ConfigError(path, std::string(expect) + ", got " + describe(j));
    }
    if (!(seconds >= 0) || seconds > 1e9)
      throw ConfigError(path, "expected a duration from 0 to 1e9 seconds");
    const auto ms = static_cast<std::int64_t>(std::llround(seconds * 1000));
    // Durations count whole milliseconds, and 0 means "off" or "no wait" for several keys: a
    // positive value that rounds to 0 must not silently turn into that.
    if (ms == 0 && seconds > 0)
      throw ConfigError(path, "expected 0 or at least 1ms (durations count whole milliseconds)");
    return std::chrono::milliseconds(ms);
  }

  static std::uint64_t parse_size(const Json& j, const std::string& path) {
    const char* expect =
        "expected a size: bytes as an integer, or a string like \"64KiB\", "
        "\"1MiB\", \"1GiB\"";
    // JSON built in code stores small integers as signed; from a file they are unsigned.
    if (j.is_number_unsigned()) return j.get<std::uint64_t>();
    if (j.is_number_integer()) {
      if (j.get<std::int64_t>() < 0)
        throw ConfigError(path, "expected a size, got a negative number");
      return static_cast<std::uint64_t>(j.get<std::int64_t>());
    }
    if (!j.is_string()) throw ConfigError(path, std::string(expect) + ", got " + describe(j));
    std::string s = j.get<std::string>();
    std::size_t end = 0;
    double v = 0;
    try {
      v = std::stod(s, &end);
    } catch (const std::exception&) {
      throw ConfigError(path, std::string(expect) + ", got \"" + s + "\"");
    }
    std::string unit = s.substr(end);
    double mult = 0;
    if (unit.empty() || unit == "B")
      mult = 1;
    else if (unit == "KiB" || unit == "K" || unit == "k")
      mult = 1024.0;
    else if (unit == "MiB" || unit == "M")
      mult = 1024.0 * 1024;
    else if (unit == "GiB" || unit == "G")
      mult = 1024.0 * 1024 * 1024;
    else if (unit == "KB" || unit == "kB")
      mult = 1e3;
    else if (unit == "MB")
      mult = 1e6;
    else if (unit == "GB")
      mult = 1e9;
    if (mult == 0 || !(v >= 0) || v * mult > 1e18)
      throw ConfigError(path, std::string(expect) + ", got \"" + s + "\"");
    return static_cast<std::uint64_t>(v * mult);
  }

 private:
  bool take(std::string_view key) {
    if (!json_.contains(key)) return false;
    seen_.insert(std::string(key));
    return true;
  }

  const Json& json_;
  std::string path_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace sluice
