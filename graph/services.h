// Objects a run hands to every node by their type, which the graph layer carries without knowing
// them (the data-parallel communicator of models/distributed.h): the runtime needs no header of a
// layer above it, and a new service needs no change here.
#pragma once

#include <map>
#include <memory>
#include <typeindex>
#include <typeinfo>

namespace sefar::graph {

class Services {
 public:
  // Replaces the service of type T (null removes it).
  template <class T>
  void put(std::shared_ptr<T> service) {
    if (service)
      by_type_[std::type_index(typeid(T))] = std::move(service);
    else
      by_type_.erase(std::type_index(typeid(T)));
  }
  // The service of type T; null when the run has none.
  template <class T>
  std::shared_ptr<T> get() const {
    auto it = by_type_.find(std::type_index(typeid(T)));
    return it == by_type_.end() ? nullptr : std::static_pointer_cast<T>(it->second);
  }

 private:
  std::map<std::type_index, std::shared_ptr<void>> by_type_;
};

}  // namespace sefar::graph
