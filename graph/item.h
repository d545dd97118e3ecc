// The unit that flows along edges. A node body sees items, never TBB types.
#pragma once

#include <any>
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sefar::graph {

class Gate;

// Ownership of one unit of a source's in-flight budget. Every item derived from a source item
// shares its ticket; an item built from several (a batch) holds all of theirs. When the last holder
// goes away the budget unit returns to the source, so items in flight stay bounded whatever the
// producer's speed.
class Ticket {
 public:
  Ticket(std::shared_ptr<Gate> gate, std::uint64_t seq) : gate_(std::move(gate)), seq_(seq) {}
  explicit Ticket(std::vector<std::shared_ptr<Ticket>> parts) : parts_(std::move(parts)) {}
  ~Ticket();
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;
  // The source item(s) this ticket stands for were skipped as bad input: their source counts them
  // (once per item, however many nodes skip it).
  void mark_skipped();

 private:
  std::shared_ptr<Gate> gate_;
  std::uint64_t seq_ = 0;  // the source item's position
  std::vector<std::shared_ptr<Ticket>> parts_;
  std::atomic<bool> skipped_{false};
};

struct Item {
  std::uint64_t seq = 0;  // position in source order (after a renumbering node: in its order)
  std::any value;         // empty: placeholder for an item skipped upstream
  std::shared_ptr<const std::string> label;  // what the item is (e.g. a clip path), for errors
  std::shared_ptr<Ticket> ticket;
  std::uint64_t produced_ns = 0;  // when its source produced it (profiling)

  bool skipped() const { return !value.has_value(); }
  std::string describe() const;

  template <class T>
  const T& as() const;
};

template <class T>
const T& Item::as() const {
  if (const T* p = std::any_cast<T>(&value)) return *p;
  throw std::logic_error("item " + describe() + " does not hold the expected message type");
}

// Builds an item from several (a batch): it keeps every part's budget ticket.
Item combine(std::uint64_t seq, std::any value, const std::vector<Item>& parts,
             std::shared_ptr<const std::string> label = nullptr);

}  // namespace sefar::graph
