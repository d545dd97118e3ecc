#include "io/class_names.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

namespace sefar::io {

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read class names from '{}'", path));
  std::map<std::size_t, std::string> placed;
  std::vector<std::string> in_order;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    auto e = line.find_last_not_of(" \t");
    std::string t = line.substr(b, e - b + 1);
    auto sep = t.find_first_of(" \t");
    bool indexed = sep != std::string::npos && sep <= 9 &&
                   std::all_of(t.begin(), t.begin() + long(sep), [](char c) { return c >= '0' && c <= '9'; });
    if (indexed) {
      std::size_t index = std::stoul(t.substr(0, sep));
      placed[index] = t.substr(t.find_first_not_of(" \t", sep));
    } else {
      in_order.push_back(t);
    }
  }
  std::vector<std::string> names;
  if (!placed.empty()) names.resize(placed.rbegin()->first + 1);
  for (auto& [i, n] : placed) names[i] = std::move(n);
  for (auto& n : in_order) names.push_back(std::move(n));
  return names;
}

}  // namespace sefar::io
