#include "tools/options.h"

#include <climits>
#include <stdexcept>

#include <fmt/format.h>

#include "app/run.h"
#include "graph/diagnostics.h"

namespace sefar::tools {

namespace {

std::int64_t parse_integer(const std::string& name, const std::string& v) {
  try {
    std::size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw app::UsageError(fmt::format("--{}: expected an integer, got \"{}\"", name, v));
  }
}

}  // namespace

std::int64_t Options::read_integer(const std::string& name, const std::string& v, std::int64_t min,
                                   std::int64_t max, const std::string& range_message) {
  const std::int64_t x = parse_integer(name, v);
  if (x >= min && x <= max) return x;
  if (range_message.empty()) throw app::UsageError(fmt::format("--{}: {} is out of range", name, v));
  std::string message = range_message;
  if (auto at = message.find("{}"); at != std::string::npos) message.replace(at, 2, v);
  throw app::UsageError(message);
}

Options& Options::number(std::string name, double& target) {
  options_.push_back({name, [name, &target](const std::string& v) {
                        try {
                          std::size_t used = 0;
                          const double x = std::stod(v, &used);
                          if (used != v.size()) throw std::invalid_argument(v);
                          target = x;
                        } catch (const std::exception&) {
                          throw app::UsageError(fmt::format("--{}: expected a number, got \"{}\"", name, v));
                        }
                      }});
  return *this;
}

Options& Options::text(std::string name, std::string& target) {
  options_.push_back({std::move(name), [&target](const std::string& v) { target = v; }});
  return *this;
}

Options& Options::pair(std::string name, char sep, int& first, int& second) {
  options_.push_back({name, [name, sep, &first, &second](const std::string& v) {
                        const auto at = v.find(sep);
                        if (at == std::string::npos)
                          throw app::UsageError(fmt::format("--{}: expected A{}B, got \"{}\"", name, sep, v));
                        for (auto [part, target] : {std::pair<std::string, int*>{v.substr(0, at), &first},
                                                    {v.substr(at + 1), &second}}) {
                          *target = int(read_integer(name, part, INT_MIN, INT_MAX, ""));
                        }
                      }});
  return *this;
}

Options& Options::flag(std::string name, bool& target, bool value_when_given) {
  options_.push_back(
      {std::move(name), [&target, value_when_given](const std::string&) { target = value_when_given; }});
  return *this;
}

Options& Options::custom(std::string name, std::function<void(const std::string&)> read) {
  options_.push_back({std::move(name), std::move(read)});
  return *this;
}

void Options::read(const std::vector<std::pair<std::string, std::string>>& given) const {
  for (const auto& [name, value] : given) {
    const Option* option = nullptr;
    for (const auto& o : options_)
      if (o.name == name) option = &o;
    if (!option) {
      std::vector<std::string> known;
      for (const auto& o : options_) known.push_back(o.name);
      const auto guess = graph::closest_match(name, known);
      throw app::UsageError(fmt::format("unknown option --{}{}", name,
                                        guess.empty() ? "" : " (did you mean --" + guess + "?)"));
    }
    option->read(value);
  }
}

}  // namespace sefar::tools
