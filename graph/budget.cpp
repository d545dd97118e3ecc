#include "graph/budget.h"

#include <fmt/format.h>

namespace sefar::graph {

Ticket::~Ticket() {
  if (gate_) gate_->release();
}

void Ticket::mark_skipped() {
  if (skipped_.exchange(true)) return;
  if (gate_) gate_->skipped(seq_);
  for (auto& part : parts_) part->mark_skipped();
}

std::string Item::describe() const {
  if (label && !label->empty()) return fmt::format("item {} ({})", seq, *label);
  return fmt::format("item {}", seq);
}

Item combine(std::uint64_t seq, std::any value, const std::vector<Item>& parts,
             std::shared_ptr<const std::string> label) {
  std::vector<std::shared_ptr<Ticket>> tickets;
  tickets.reserve(parts.size());
  for (const auto& p : parts)
    if (p.ticket) tickets.push_back(p.ticket);
  Item out;
  out.seq = seq;
  out.value = std::move(value);
  out.label = std::move(label);
  out.ticket = std::make_shared<Ticket>(std::move(tickets));
  return out;
}

}  // namespace sefar::graph
