// Stop requests. SIGINT and SIGTERM (once the CLI installed the handlers), or a test calling
// request_stop(), ask every running graph to stop: sources stop producing, the graph is cancelled
// (bodies already running finish, queued items are dropped), each node's interrupted() hook runs,
// and Runtime::run throws graph::Interrupted. A second signal ends the process at once.
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace sefar::graph {

// A run's stop requests, which the runtime hands every node (NodeContext::stop) so that no node
// reads or sets the process-wide state itself. requested(): a signal arrived or a node of the run
// asked (a data-parallel rank whose peer was signalled); request(): stops this run as a signal would
// (its Runtime::run throws Interrupted(signal)), and the runs nested in its nodes' bodies with it.
class StopToken {
 public:
  StopToken() : signal_(std::make_shared<std::atomic<int>>(0)) {}
  bool requested() const;
  // The signal a stop was requested for (this run's, else the process's); 0 when none.
  int signal() const;
  void request(int signal) const;

 private:
  std::shared_ptr<std::atomic<int>> signal_;
};

// Installs the SIGINT/SIGTERM handlers (process-wide; call once, from main).
void install_stop_handlers();
// Until this is called, a SIGINT or SIGTERM ends the process at once (start-up: nothing is written yet,
// and a blocking open of a FIFO would not see a request); Runtime::run calls it when its graph starts.
void enable_graceful_stop();
// What the first signal prints on stderr (a string that lives as long as the process); the default
// speaks of training ("finishing the running step and writing a checkpoint").
void set_stop_message(const char* message);
// Records a stop request for `signal` (async-signal-safe). The first request wins.
void request_stop(int signal);
// The signal of the pending stop request, 0 when none.
int stop_signal();
bool stop_requested();
// Forgets a stop request (tests running several graphs in one process).
void clear_stop();
// "SIGINT", "SIGTERM" or "signal N".
std::string signal_name(int signal);

}  // namespace sefar::graph
