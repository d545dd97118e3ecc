// Training checkpoints on disk. A checkpoint is one safetensors file, `<path>.safetensors`, written
// atomically (temporary file, fsync, rename): every tensor of the training state, and in its
// metadata (key "sidecar") the JSON that says what the state is (step, epoch, node state, where
// each source resumes, the resolved pipeline). `<path>.json` repeats that JSON for people and
// tools, also written atomically, after the tensors; the copy inside the safetensors file is the
// one that counts, so a crash between the two writes leaves a consistent checkpoint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sefar::io {

struct CheckpointInfo {
  std::string path;  // without extension
  std::string name;  // file stem: epoch_0003, step_00000042, best
  std::int64_t step = 0;
  nlohmann::json sidecar;
};

// The sidecar of the checkpoint at `path` (without extension), read from its safetensors metadata
// (or, for checkpoints written before it was there, from `<path>.json`). Throws naming the file.
nlohmann::json read_checkpoint_sidecar(const std::string& path);

// Every complete checkpoint in `dir` (files that read back with a sidecar), by step, then with
// `best` before the others of the same step. Unreadable files are skipped.
std::vector<CheckpointInfo> list_checkpoints(const std::string& dir);

struct DamagedCheckpoint {
  std::string path;    // without extension
  std::string reason;  // what failed: cut short, checksum, sidecar, non-finite weights
};
struct CheckpointScan {
  std::vector<CheckpointInfo> intact;  // ordered as list_checkpoints orders them
  std::vector<DamagedCheckpoint> damaged;
};
// Every checkpoint file in `dir` (`*.safetensors`), verified: the file reads back, its data matches
// the checksum written with it, its sidecar parses and names a step, and the model weights are
// finite. Reads every byte of every checkpoint.
CheckpointScan scan_checkpoints(const std::string& dir);

// The checkpoint a resumed run continues from: the intact one with the most steps (an epoch or step
// checkpoint rather than `best` when they hold the same step). Empty when there is none.
std::optional<CheckpointInfo> latest_checkpoint(const CheckpointScan& scan);
std::optional<CheckpointInfo> latest_checkpoint(const std::string& dir);  // of scan_checkpoints(dir)

// Renames a damaged checkpoint's files aside (`<name>.safetensors.damaged`, never over an earlier
// one), so that it is kept for inspection and no later scan takes it. Returns the new tensors path.
std::string set_aside(const DamagedCheckpoint& checkpoint);

// Writes `text` to `path` through `<path>.tmp`, fsync and rename. Throws std::runtime_error naming
// the path and the system's reason.
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace sefar::io
