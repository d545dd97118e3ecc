#include "graph/stop.h"

#include <atomic>
#include <csignal>
#include <cstring>

#include <fmt/format.h>
#include <unistd.h>

namespace sefar::graph {

namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the stop flag must be usable from a signal handler");

// False while the process starts up (pipeline files, lists, weights: opening a FIFO blocks): a
// signal then ends it at once, as nothing is written yet and nothing would see the request.
std::atomic<bool> g_graceful{false};
static_assert(std::atomic<bool>::is_always_lock_free,
              "the start-up flag must be usable from a signal handler");

constexpr char kTrainingMessage[] =
    "\nsefar: stopping: finishing the running step and writing a checkpoint (signal again to quit at once)\n";
std::atomic<const char*> g_message{kTrainingMessage};
static_assert(std::atomic<const char*>::is_always_lock_free,
              "the message must be readable from a signal handler");

extern "C" void on_stop_signal(int signal) {
  if (!g_graceful.load()) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  int expected = 0;
  if (!g_stop_signal.compare_exchange_strong(expected, signal)) {
    // Second signal: the user insists. Default action, at once (the last complete checkpoint stays).
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  const char* message = g_message.load();
  ssize_t ignored = ::write(STDERR_FILENO, message, std::strlen(message));
  (void)ignored;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  // A SIGINT ignored from the start (a job started in the background by a shell) stays ignored, as
  // shells expect.
  struct sigaction previous;
  if (sigaction(SIGINT, nullptr, &previous) == 0 && previous.sa_handler != SIG_IGN)
    sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

void set_stop_message(const char* message) {
  g_message.store(message);
}

void enable_graceful_stop() {
  g_graceful.store(true);
}

void request_stop(int signal) {
  int expected = 0;
  g_stop_signal.compare_exchange_strong(expected, signal);
}

int stop_signal() {
  return g_stop_signal.load();
}
bool stop_requested() {
  return g_stop_signal.load() != 0;
}

bool StopToken::requested() const {
  return signal() != 0;
}
int StopToken::signal() const {
  const int own = signal_->load();
  return own ? own : stop_signal();
}
void StopToken::request(int signal) const {
  int none = 0;
  signal_->compare_exchange_strong(none, signal);
}
void clear_stop() {
  g_stop_signal.store(0);
}

std::string signal_name(int signal) {
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGTERM) return "SIGTERM";
  return fmt::format("signal {}", signal);
}

}  // namespace sefar::graph
