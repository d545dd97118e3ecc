// One table per enum: every value with its name (and optionally a one-line doc). The name of a
// value, the parsing of a name and the list of names a schema offers as choices all come from it, so
// a new value is one new line and the three cannot disagree. Standard library only.
//
//   inline constexpr auto kColours = util::enum_table<Colour>(
//       {
//           {Colour::red, "red"},
//           {Colour::green, "green", "the default"},
//       },
//       "colour");
//   kColours.name(Colour::red)        -> "red"
//   kColours.parse("green")           -> Colour::green (std::nullopt for an unknown name)
//   kColours.parse_or_throw("blue")   -> std::invalid_argument "unknown colour 'blue' (valid: red, green)"
//   kColours.names()                  -> {"red", "green"}
//
// The table is checked when it is built: a repeated name or value does not compile.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sefar::util {

template <class E>
struct EnumEntry {
  E value{};
  const char* name = "";
  const char* doc = "";  // one line, or empty
};

template <class E, std::size_t N>
class EnumTable {
 public:
  // `what` names the kind of value in error messages ("temporal perturbation").
  constexpr EnumTable(const char* what, const std::array<EnumEntry<E>, N>& entries)
      : what_(what), entries_(entries) {}

  // The name of `value`; "unknown" for a value the table lacks.
  constexpr const char* name(E value) const {
    for (const auto& e : entries_)
      if (e.value == value) return e.name;
    return "unknown";
  }
  // The value named `text`, or std::nullopt.
  constexpr std::optional<E> parse(std::string_view text) const {
    for (const auto& e : entries_)
      if (text == e.name) return e.value;
    return std::nullopt;
  }
  // As parse; an unknown name throws std::invalid_argument "unknown WHAT 'TEXT' (valid: a, b, c)".
  E parse_or_throw(std::string_view text) const {
    if (auto value = parse(text)) return *value;
    std::string message = "unknown ";
    message.append(what_).append(" '").append(text).append("' (valid: ").append(joined()).append(")");
    throw std::invalid_argument(message);
  }

  // Every name in table order: a schema's choice list.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(N);
    for (const auto& e : entries_) out.emplace_back(e.name);
    return out;
  }
  // The names joined: "a, b, c" by default; "a, b or c" with last = " or ".
  std::string joined(std::string_view separator = ", ", std::string_view last = ", ") const {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) {
      if (i > 0) out.append(i + 1 == N ? last : separator);
      out.append(entries_[i].name);
    }
    return out;
  }
  // "a: doc of a; b: doc of b", for a parameter's documentation.
  std::string describe() const {
    std::string out;
    for (const auto& e : entries_) {
      if (!out.empty()) out.append("; ");
      out.append(e.name).append(": ").append(e.doc);
    }
    return out;
  }

  constexpr std::array<E, N> values() const {
    std::array<E, N> out{};
    for (std::size_t i = 0; i < N; ++i) out[i] = entries_[i].value;
    return out;
  }
  constexpr const std::array<EnumEntry<E>, N>& entries() const { return entries_; }
  constexpr const char* what() const { return what_; }
  static constexpr std::size_t size() { return N; }

 private:
  const char* what_;
  std::array<EnumEntry<E>, N> entries_;
};

// Builds a table; `what` names the kind of value in error messages. A repeated name or value does not
// compile where the result initialises a constexpr variable (at run time it throws std::logic_error).
template <class E, std::size_t N>
constexpr EnumTable<E, N> enum_table(const EnumEntry<E> (&entries)[N], const char* what) {
  std::array<EnumEntry<E>, N> table{};
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (entries[j].value == entries[i].value) throw std::logic_error("enum_table: a value is listed twice");
      if (std::string_view(entries[j].name) == entries[i].name)
        throw std::logic_error("enum_table: a name is listed twice");
    }
    table[i] = entries[i];
  }
  return EnumTable<E, N>(what, table);
}

}  // namespace sefar::util
