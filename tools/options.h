// A command's `--name VALUE` options, declared once each with the variable it sets and how its
// value is read: parsing, "unknown option" with "did you mean", and the errors naming the flag are
// written here once for every command (synth, infer).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sefar::tools {

class Options {
 public:
  // An integer in [min, max]; outside, `--NAME: VALUE is out of range`, or `range_message` with
  // "{}" standing for the value.
  template <class T>
  Options& integer(std::string name, T& target, std::int64_t min, std::int64_t max,
                   std::string range_message = "") {
    return custom(name, [name, &target, min, max, range_message](const std::string& v) {
      target = T(read_integer(name, v, min, max, range_message));
    });
  }
  Options& number(std::string name, double& target);
  Options& text(std::string name, std::string& target);
  // "AxB" (sep 'x') or "A:B" (sep ':'), two integers.
  Options& pair(std::string name, char sep, int& first, int& second);
  // A flag without a value (given as the value "").
  Options& flag(std::string name, bool& target, bool value_when_given);
  // Any other reading; `read` throws app::UsageError naming the flag.
  Options& custom(std::string name, std::function<void(const std::string&)> read);

  // Reads every (name, value) given, in order. Throws app::UsageError: an unknown option (with the
  // closest known name), or a value that does not read.
  void read(const std::vector<std::pair<std::string, std::string>>& given) const;

 private:
  static std::int64_t read_integer(const std::string& name, const std::string& v, std::int64_t min,
                                   std::int64_t max, const std::string& range_message);
  struct Option {
    std::string name;
    std::function<void(const std::string&)> read;
  };
  std::vector<Option> options_;
};

}  // namespace sefar::tools
