// The node interface. A node object is created once per pipeline node, owned by the runtime, and
// outlives the TBB graph's copies of its bodies: state (decoders, models, generators) lives here.
#pragma once

#include <any>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/item.h"
#include "graph/schema.h"
#include "graph/services.h"
#include "graph/stop.h"
#include "util/errors.h"

namespace sefar::graph {

class DeviceTimer;  // graph/profile.h

struct NodeContext {
  std::string pipeline;  // pipeline name
  std::string id;
  std::string type;
  int concurrency = 1;
  std::uint64_t seed = 0;  // run seed; nodes derive their own streams from it
  std::string run_dir;     // where a run writes its outputs (empty: none)
  // Data-parallel job: this process's rank among world_size (0 of 1 alone). Sources shard their
  // lists by it; the training node averages gradients through the job's models::Communicator, a
  // service of the run (none alone).
  int rank = 0, world_size = 1;
  Services services;
  // The run's stop requests (graph/stop.h): a node reads and raises them here, never through the
  // process-wide functions.
  StopToken stop;
  std::vector<bool> connected_inputs;  // per input port: has at least one edge
  // Per input port: the ids of the source nodes whose items reach it (through any path).
  std::vector<std::vector<std::string>> input_sources;
  Params params;
  // The state a resumed run hands this node (RunOptions::resume[id]); null in a fresh run. A
  // source reads where to start; a training node, which checkpoint to load.
  json resume;
  // The resolved pipeline document (what `sefar validate` prints), e.g. to store in checkpoints.
  const json* document = nullptr;
  // Size and checksum of each split list the pipeline names, by path (RunOptions::list_fingerprints),
  // for checkpoints: a resumed run compares them with the lists as they are then.
  json list_fingerprints;
  // The pipeline's shared models by id (its "models" section), built before the nodes.
  std::map<std::string, std::any> models;

  // The model named by the string parameter `param` (declared with param_model), as the
  // std::shared_ptr<T> its model type built.
  template <class T>
  std::shared_ptr<T> model(const std::string& param) const {
    const std::string model_id = params.get_string(param);
    auto it = models.find(model_id);
    if (it == models.end())
      throw util::ParamError(param, "no model \"" + model_id +
                                  "\" in the pipeline's models");
    if (auto* p = std::any_cast<std::shared_ptr<T>>(&it->second)) return *p;
    throw util::ParamError(param, "model \"" + model_id +
                                "\" is not of the type this node needs");
  }
};

// Where a body sends its results. Implemented by the runtime.
class Output {
 public:
  virtual ~Output() = default;
  // Sends `value` on output `port` as a derivative of the item being processed (same seq, label
  // and budget ticket).
  template <class T>
  void emit(int port, T value) {
    emit_value(port, std::any(std::move(value)));
  }
  // Sends a fully built item (a node that renumbers its output builds its own).
  virtual void emit_item(int port, Item item) = 0;
  // The current item cannot be processed (bad input): counted and reported, and a placeholder
  // keeps order for downstream sequencers. `category`: optional short kind ("missing", ...).
  void skip(const std::string& reason) { skip_item(reason, ""); }
  void skip(const std::string& reason, const std::string& category) { skip_item(reason, category); }

 protected:
  virtual void emit_value(int port, std::any value) = 0;
  virtual void skip_item(const std::string& reason, const std::string& category) = 0;
};

class Node {
 public:
  virtual ~Node() = default;
  // Called once before the first item, after every node was built and every start-up check passed
  // (Runtime::prepare): open outputs here, not in the constructor, so that a pipeline that fails a
  // check leaves its run directory as it was.
  virtual void start() {}
  // Called for every item reaching input `port`. May run concurrently when the node's concurrency
  // is above 1 (never for nodes whose schema says serial()).
  virtual void process(int port, const Item& item, Output& out) = 0;
  // Called once after every item has been processed, in topological order: flush partial state.
  virtual void finish(Output& out) { (void)out; }
  // Called instead of finish() when the run is stopped (graph/stop.h), once the graph is cancelled
  // and no body runs, in topological order: save what must survive (a checkpoint). Items still
  // queued are dropped afterwards.
  virtual void interrupted() {}
  // Largest number of source items this node can hold at once (a batcher's batch size); the
  // runtime checks each source's in-flight budget against what is downstream of it.
  virtual std::size_t items_held() const { return 0; }
  // Where the node's work runs asynchronously on a device (a GPU), a timer of that work for the
  // profile (graph/profile.h); null: the body's wall time is its work.
  virtual std::shared_ptr<DeviceTimer> device_timer() const { return nullptr; }
};

// A node without inputs. produce() is called serially until it returns false.
class Source : public Node {
 public:
  struct Produced {
    std::any value;
    std::string label;
  };
  virtual bool produce(Produced& out) = 0;
  // Items in one pass over the source's data (a split list's length; 0: unknown). When every item of
  // a pass is skipped as bad input, an endless source would spin forever: the runtime stops the run
  // once 2 x items_per_pass (+ the source's budget) consecutive items were skipped.
  virtual std::uint64_t items_per_pass() const { return 0; }
  void process(int, const Item&, Output&) final {}
};

}  // namespace sefar::graph
