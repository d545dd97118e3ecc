// Node schemas: the ports and typed parameters a node type declares, and the validated parameter
// values a node is constructed from. Modelled on DALI's operator schemas: a node's schema, class
// and registration live in one file under nodes/.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <typeindex>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/enum_table.h"

namespace sefar::graph {

using json = nlohmann::json;

enum class ParamType { Bool, Int, Float, String, IntList, FloatList, StringList, Object };
const char* to_string(ParamType type);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Int;
  json default_value;  // null when the parameter is required
  bool required = false;
  std::optional<double> min, max;       // inclusive bounds, for numbers and list elements
  std::optional<std::size_t> min_size;  // for lists
  std::vector<std::string> choices;     // for strings: the allowed values
  // For strings: the value names an entry of the pipeline's "models" section of this model type
  // (checked by the validator, with "did you mean").
  std::string model_type;
  // For strings: the value names a split list file. A checkpoint records each such file's size and
  // checksum, and a resumed run refuses lists that changed since (sefar run --allow-changed-lists).
  bool split_list = false;
  // The value says how a run executes, not what it computes (threads, a device, how often to log):
  // a resumed run may change it (`sefar run --resume` with another pipeline). Like GStreamer's
  // "mutable while playing" property flag.
  bool may_change_on_resume = false;
  // For integers: the LibTorch intra-op thread count the node wants (0: no wish). The runtime, which
  // owns that process-wide setting, applies the largest wish of a pipeline once, before it builds
  // any model or node (RunOptions::set_compute_threads).
  bool compute_threads = false;
  std::string doc;

  // Checks `value` against this spec; returns an error message or empty when it is fine.
  std::string check(const json& value) const;
};

// The type of message a port carries: a name shown to users and the C++ type checked at runtime.
struct MessageType {
  std::string name;
  std::type_index type = typeid(void);
  bool is_any() const { return name == "any"; }
  bool compatible_with(const MessageType& other) const {
    return is_any() || other.is_any() || name == other.name;
  }
};

template <class T>
MessageType message(std::string name) {
  return MessageType{std::move(name), std::type_index(typeid(T))};
}
inline MessageType any_message() {
  return MessageType{"any", std::type_index(typeid(void))};
}

struct PortSpec {
  std::string name;
  MessageType message;
  std::string doc;
  bool required = true;   // inputs: must be connected
  bool ordered = false;   // inputs: items arrive in source order (a sequencer is put in front)
  bool feedback = false;  // inputs: may close a cycle
};

class Params;
class Node;
struct NodeContext;

using NodeFactory = std::function<std::unique_ptr<Node>(const NodeContext&)>;
// Builds a shared model (an entry of the pipeline's "models" section): a std::shared_ptr<T> in a
// std::any, handed to every node that names it (NodeContext::model).
using ModelFactory = std::function<std::any(const NodeContext&)>;

// Everything the runtime knows about a node type.
class NodeSpec {
 public:
  explicit NodeSpec(std::string type) : type_(std::move(type)) {}

  NodeSpec& doc(std::string text) {
    doc_ = std::move(text);
    return *this;
  }
  NodeSpec& input(std::string name, MessageType msg, std::string doc, bool required = true);
  NodeSpec& ordered_input(std::string name, MessageType msg, std::string doc, bool required = true);
  NodeSpec& feedback_input(std::string name, MessageType msg, std::string doc);
  NodeSpec& output(std::string name, MessageType msg, std::string doc);
  // Declares that the node keeps state across items: it always runs with concurrency 1.
  NodeSpec& serial() {
    serial_ = true;
    return *this;
  }
  // Declares that the node numbers its outputs itself (batching, ...): placeholders of skipped
  // items reach its body instead of being forwarded.
  NodeSpec& renumbers() {
    renumbers_ = true;
    return *this;
  }
  // Declares that an item this node has received is still processed when the run is stopped
  // (SIGINT/SIGTERM): the nodes of a training step, so a stop never cuts a step in half (a student
  // updated but not its teacher). The node must not start new work once graph::stop_requested().
  NodeSpec& completes_on_stop() {
    completes_on_stop_ = true;
    return *this;
  }
  // Declares that the body runs in the thread that sent the item, called from the sender's body
  // instead of as a task of its own: a chain of such nodes (the stages of a training step) stays on
  // one thread, with its tensors' allocations and LibTorch's thread team. Its busy time in the
  // profile is its own (self time). Its inputs can be neither ordered nor feedback.
  NodeSpec& runs_inline() {
    runs_inline_ = true;
    return *this;
  }

  NodeSpec& param_bool(std::string name, std::optional<bool> def, std::string doc);
  NodeSpec& param_int(std::string name, std::optional<std::int64_t> def, std::string doc,
                      std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
  NodeSpec& param_float(std::string name, std::optional<double> def, std::string doc,
                        std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
  NodeSpec& param_string(std::string name, std::optional<std::string> def, std::string doc);
  // A string naming a split list file (ParamSpec::split_list); empty: none.
  NodeSpec& param_split_list(std::string name, std::optional<std::string> def, std::string doc);
  NodeSpec& param_choice(std::string name, std::string def, std::vector<std::string> choices,
                         std::string doc);
  // A choice among the names of an enum's table (util/enum_table.h); read it with Params::get_enum.
  template <class E, std::size_t N>
  NodeSpec& param_choice(std::string name, E def, const util::EnumTable<E, N>& table, std::string doc) {
    return param_choice(std::move(name), table.name(def), table.names(), std::move(doc));
  }
  NodeSpec& param_int_list(std::string name, std::optional<std::vector<std::int64_t>> def, std::string doc,
                           std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt,
                           std::size_t min_size = 0);
  NodeSpec& param_float_list(std::string name, std::optional<std::vector<double>> def, std::string doc,
                             std::optional<double> min = std::nullopt,
                             std::optional<double> max = std::nullopt, std::size_t min_size = 0);
  NodeSpec& param_string_list(std::string name, std::optional<std::vector<std::string>> def, std::string doc);
  // A string naming an entry of the pipeline's "models" section whose type is `model_type`.
  NodeSpec& param_model(std::string name, std::string def, std::string model_type, std::string doc);
  NodeSpec& param(ParamSpec spec);
  // Flags the parameter declared last: a resumed run may change it (ParamSpec::may_change_on_resume).
  NodeSpec& may_change_on_resume();
  // Flags the integer parameter declared last as the node's compute thread count
  // (ParamSpec::compute_threads).
  NodeSpec& compute_threads();
  // Declares, at this place, a group of parameters several node types share: `group` adds them
  // (e.g. nodes::model_runner_params: weights, device, threads), and a matching options struct reads
  // them back.
  NodeSpec& param_group(void (*group)(NodeSpec&)) {
    group(*this);
    return *this;
  }

  NodeSpec& factory(NodeFactory f) {
    factory_ = std::move(f);
    return *this;
  }
  // Makes this a model type: declared in the pipeline's "models" section (no ports), built once
  // before the nodes, and shared by every node naming it.
  NodeSpec& model_factory(ModelFactory f) {
    model_factory_ = std::move(f);
    return *this;
  }

  const std::string& type() const { return type_; }
  const std::string& doc() const { return doc_; }
  const std::vector<PortSpec>& inputs() const { return inputs_; }
  const std::vector<PortSpec>& outputs() const { return outputs_; }
  const std::vector<ParamSpec>& params() const { return params_; }
  bool is_serial() const { return serial_; }
  bool is_source() const { return inputs_.empty(); }
  bool renumbers_output() const { return renumbers_; }
  bool completes_on_stop_flag() const { return completes_on_stop_; }
  bool runs_inline_flag() const { return runs_inline_; }
  bool is_model() const { return bool(model_factory_); }
  const NodeFactory& factory() const { return factory_; }
  const ModelFactory& model_factory() const { return model_factory_; }

  const PortSpec* find_input(const std::string& name) const;
  const PortSpec* find_output(const std::string& name) const;
  const ParamSpec* find_param(const std::string& name) const;
  int input_index(const std::string& name) const;
  int output_index(const std::string& name) const;

 private:
  std::string type_, doc_;
  std::vector<PortSpec> inputs_, outputs_;
  std::vector<ParamSpec> params_;
  bool serial_ = false;
  bool renumbers_ = false;
  bool completes_on_stop_ = false;
  bool runs_inline_ = false;
  NodeFactory factory_;
  ModelFactory model_factory_;
};

// Validated parameter values of one node, defaults filled in. Nodes read them once, in their
// constructor, into a typed Options struct; bodies never touch JSON.
class Params {
 public:
  Params() = default;
  Params(std::string owner, json values) : owner_(std::move(owner)), values_(std::move(values)) {}

  bool get_bool(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  std::vector<std::int64_t> get_int_list(const std::string& name) const;
  std::vector<double> get_float_list(const std::string& name) const;
  std::vector<std::string> get_string_list(const std::string& name) const;
  // The value of a choice declared with an enum's table (NodeSpec::param_choice).
  template <class E, std::size_t N>
  E get_enum(const std::string& name, const util::EnumTable<E, N>& table) const {
    const std::string value = get_string(name);
    if (auto parsed = table.parse(value)) return *parsed;
    throw std::invalid_argument("param \"" + name + "\": unknown " + table.what() + " '" + value +
                                "' (valid: " + table.joined() + ")");
  }
  const json& raw(const std::string& name) const;
  const json& values() const { return values_; }

 private:
  std::string owner_;  // "node 'id' (type)", for errors about a missing key (a programming error)
  json values_;
};

}  // namespace sefar::graph
