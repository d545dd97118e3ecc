#include "graph/schema.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "graph/diagnostics.h"
#include "graph/json_source.h"

namespace sefar::graph {

namespace {

constexpr auto kParamTypes = util::enum_table<ParamType>(
    {
        {ParamType::Bool, "bool"},
        {ParamType::Int, "int"},
        {ParamType::Float, "float"},
        {ParamType::String, "string"},
        {ParamType::IntList, "int list"},
        {ParamType::FloatList, "float list"},
        {ParamType::StringList, "string list"},
        {ParamType::Object, "object"},
    },
    "parameter type");

}  // namespace

const char* to_string(ParamType type) {
  return kParamTypes.name(type);
}

static const char* json_kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "a list";
    case json::value_t::object:
      return "an object";
    default:
      return "a value";
  }
}

static std::string check_number(const ParamSpec& s, const json& v, bool integer) {
  if (integer) {
    if (!v.is_number_integer()) {
      if (v.is_number_float() && std::fabs(v.get<double>()) >= 9.2e18)
        return fmt::format("value {} is too large for an integer", quote_value(v));
      if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())
        return fmt::format(
            "expected an integer, got {} (write it without {})", quote_value(v),
            quote_value(v).find_first_of("eE") != std::string::npos ? "an exponent" : "a decimal point");
      return fmt::format("expected an integer, got {} {}", json_kind(v), quote_value(v));
    }
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX))
      return fmt::format("value {} is too large", quote_value(v));
  } else if (!v.is_number()) {
    return fmt::format("expected a number, got {} {}", json_kind(v), quote_value(v));
  }
  double x = v.get<double>();
  if (!std::isfinite(x)) return "value is not finite";
  if (s.min && x < *s.min) return fmt::format("value {} is below the minimum {}", quote_value(v), *s.min);
  if (s.max && x > *s.max) return fmt::format("value {} is above the maximum {}", quote_value(v), *s.max);
  return {};
}

std::string ParamSpec::check(const json& v) const {
  switch (type) {
    case ParamType::Bool:
      return v.is_boolean() ? "" : fmt::format("expected a boolean, got {} {}", json_kind(v), quote_value(v));
    case ParamType::Int:
      return check_number(*this, v, true);
    case ParamType::Float:
      return check_number(*this, v, false);
    case ParamType::String: {
      if (!v.is_string()) return fmt::format("expected a string, got {} {}", json_kind(v), quote_value(v));
      if (!choices.empty()) {
        auto s = v.get<std::string>();
        for (const auto& c : choices)
          if (c == s) return {};
        std::string allowed;
        for (const auto& c : choices) allowed += (allowed.empty() ? "" : ", ") + c;
        auto guess = closest_match(s, choices);
        return fmt::format("value {} is not one of: {}{}", quote_value(v), allowed,
                           guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess));
      }
      return {};
    }
    case ParamType::IntList:
    case ParamType::FloatList:
    case ParamType::StringList: {
      if (!v.is_array())
        return fmt::format("expected a {}, got {} {}", to_string(type), json_kind(v), quote_value(v));
      if (min_size && v.size() < *min_size)
        return fmt::format("expected at least {} element(s), got {}", *min_size, v.size());
      for (std::size_t i = 0; i < v.size(); ++i) {
        std::string e;
        if (type == ParamType::StringList)
          e = v[i].is_string() ? "" : fmt::format("expected a string, got {}", json_kind(v[i]));
        else
          e = check_number(*this, v[i], type == ParamType::IntList);
        if (!e.empty()) return fmt::format("element {}: {}", i, e);
      }
      return {};
    }
    case ParamType::Object:
      return v.is_object() ? "" : fmt::format("expected an object, got {} {}", json_kind(v), quote_value(v));
  }
  return {};
}

NodeSpec& NodeSpec::input(std::string name, MessageType msg, std::string d, bool required) {
  inputs_.push_back(PortSpec{std::move(name), std::move(msg), std::move(d), required, false, false});
  return *this;
}
NodeSpec& NodeSpec::ordered_input(std::string name, MessageType msg, std::string d, bool required) {
  inputs_.push_back(PortSpec{std::move(name), std::move(msg), std::move(d), required, true, false});
  return *this;
}
NodeSpec& NodeSpec::feedback_input(std::string name, MessageType msg, std::string d) {
  inputs_.push_back(PortSpec{std::move(name), std::move(msg), std::move(d), false, false, true});
  return *this;
}
NodeSpec& NodeSpec::output(std::string name, MessageType msg, std::string d) {
  outputs_.push_back(PortSpec{std::move(name), std::move(msg), std::move(d), false, false, false});
  return *this;
}

NodeSpec& NodeSpec::param(ParamSpec spec) {
  if (find_param(spec.name))
    throw std::logic_error(fmt::format("node type '{}': parameter '{}' declared twice", type_, spec.name));
  if (!spec.required) {
    std::string err = spec.check(spec.default_value);
    if (!err.empty())
      throw std::logic_error(fmt::format("node type '{}': default of '{}': {}", type_, spec.name, err));
  }
  params_.push_back(std::move(spec));
  return *this;
}

NodeSpec& NodeSpec::may_change_on_resume() {
  if (params_.empty()) throw std::logic_error(type_ + ": may_change_on_resume() before any parameter");
  params_.back().may_change_on_resume = true;
  return *this;
}

NodeSpec& NodeSpec::compute_threads() {
  if (params_.empty() || params_.back().type != ParamType::Int)
    throw std::logic_error(type_ + ": compute_threads() flags an integer parameter");
  params_.back().compute_threads = true;
  return *this;
}

template <class T>
static ParamSpec make_spec(std::string name, ParamType type, const std::optional<T>& def, std::string doc) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = type;
  s.required = !def.has_value();
  if (def) s.default_value = *def;
  s.doc = std::move(doc);
  return s;
}

NodeSpec& NodeSpec::param_bool(std::string name, std::optional<bool> def, std::string d) {
  return param(make_spec(std::move(name), ParamType::Bool, def, std::move(d)));
}
NodeSpec& NodeSpec::param_int(std::string name, std::optional<std::int64_t> def, std::string d,
                              std::optional<double> min, std::optional<double> max) {
  auto s = make_spec(std::move(name), ParamType::Int, def, std::move(d));
  s.min = min;
  s.max = max;
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_float(std::string name, std::optional<double> def, std::string d,
                                std::optional<double> min, std::optional<double> max) {
  auto s = make_spec(std::move(name), ParamType::Float, def, std::move(d));
  s.min = min;
  s.max = max;
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_string(std::string name, std::optional<std::string> def, std::string d) {
  return param(make_spec(std::move(name), ParamType::String, def, std::move(d)));
}
NodeSpec& NodeSpec::param_split_list(std::string name, std::optional<std::string> def, std::string d) {
  auto s = make_spec(std::move(name), ParamType::String, def, std::move(d));
  s.split_list = true;
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_choice(std::string name, std::string def, std::vector<std::string> choices,
                                 std::string d) {
  auto s = make_spec(std::move(name), ParamType::String, std::optional<std::string>(def), std::move(d));
  s.choices = std::move(choices);
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_int_list(std::string name, std::optional<std::vector<std::int64_t>> def,
                                   std::string d, std::optional<double> min, std::optional<double> max,
                                   std::size_t min_size) {
  auto s = make_spec(std::move(name), ParamType::IntList, def, std::move(d));
  s.min = min;
  s.max = max;
  if (min_size) s.min_size = min_size;
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_float_list(std::string name, std::optional<std::vector<double>> def, std::string d,
                                     std::optional<double> min, std::optional<double> max,
                                     std::size_t min_size) {
  auto s = make_spec(std::move(name), ParamType::FloatList, def, std::move(d));
  s.min = min;
  s.max = max;
  if (min_size) s.min_size = min_size;
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_model(std::string name, std::string def, std::string model_type, std::string d) {
  auto s = make_spec(std::move(name), ParamType::String, std::optional<std::string>(def), std::move(d));
  s.model_type = std::move(model_type);
  return param(std::move(s));
}
NodeSpec& NodeSpec::param_string_list(std::string name, std::optional<std::vector<std::string>> def,
                                      std::string d) {
  return param(make_spec(std::move(name), ParamType::StringList, def, std::move(d)));
}

const PortSpec* NodeSpec::find_input(const std::string& name) const {
  int i = input_index(name);
  return i < 0 ? nullptr : &inputs_[i];
}
const PortSpec* NodeSpec::find_output(const std::string& name) const {
  int i = output_index(name);
  return i < 0 ? nullptr : &outputs_[i];
}
int NodeSpec::input_index(const std::string& name) const {
  for (std::size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i].name == name) return int(i);
  return -1;
}
int NodeSpec::output_index(const std::string& name) const {
  for (std::size_t i = 0; i < outputs_.size(); ++i)
    if (outputs_[i].name == name) return int(i);
  return -1;
}
const ParamSpec* NodeSpec::find_param(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const json& Params::raw(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end())
    throw std::logic_error(fmt::format("{}: parameter '{}' is not in its schema", owner_, name));
  return *it;
}
bool Params::get_bool(const std::string& name) const {
  return raw(name).get<bool>();
}
std::int64_t Params::get_int(const std::string& name) const {
  return raw(name).get<std::int64_t>();
}
double Params::get_float(const std::string& name) const {
  return raw(name).get<double>();
}
std::string Params::get_string(const std::string& name) const {
  return raw(name).get<std::string>();
}
std::vector<std::int64_t> Params::get_int_list(const std::string& name) const {
  return raw(name).get<std::vector<std::int64_t>>();
}
std::vector<double> Params::get_float_list(const std::string& name) const {
  return raw(name).get<std::vector<double>>();
}
std::vector<std::string> Params::get_string_list(const std::string& name) const {
  return raw(name).get<std::vector<std::string>>();
}

}  // namespace sefar::graph
