// Stop requests. SIGINT and SIGTERM (once the CLI installed the handlers), or a test calling
// request_stop(), ask every running graph to stop: sources stop producing, the graph is cancelled
// (bodies already running finish, queued items are dropped), each node's interrupted() hook runs,
// and Runtime::run throws graph::Interrupted. A second signal ends the process at once.
#pragma once

#include <string>

namespace sefar::graph {

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
