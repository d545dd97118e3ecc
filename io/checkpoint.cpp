#include "io/checkpoint.h"
#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>

#include "io/safetensors.h"

namespace sefar::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool checkpoint_before(const CheckpointInfo& a, const CheckpointInfo& b) {
  bool a_best = a.name == "best", b_best = b.name == "best";
  if (a.step != b.step) return a.step < b.step;
  if (a_best != b_best) return a_best;
  return a.name < b.name;
}

}  // namespace

json read_checkpoint_sidecar(const std::string& path) {
  SafetensorsReader reader(path + ".safetensors");
  const auto& meta = reader.metadata();
  if (auto it = meta.find("sidecar"); it != meta.end()) {
    try {
      return json::parse(it->second);
    } catch (const json::exception& e) {
      throw std::runtime_error("checkpoint " + path +
                               ".safetensors: unreadable sidecar metadata: " + e.what());
    }
  }
  std::ifstream in(path + ".json");
  if (!in) throw std::runtime_error("checkpoint " + path + ".json not found");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error("checkpoint " + path + ".json: " + e.what());
  }
}

namespace {

// Empty when the checkpoint at `path` (without extension) reads back with a sidecar that names a step
// (and, with `data`, its tensor data matches its checksum and its weights are finite), else the reason.
std::string verify_checkpoint(const std::string& path, bool data, CheckpointInfo& info) {
  try {
    SafetensorsReader reader(path + ".safetensors");
    if (data)
      if (auto problem = reader.data_problem(); !problem.empty()) return problem;
    info.sidecar = read_checkpoint_sidecar(path);
    if (!info.sidecar.is_object() || !info.sidecar.contains("step") ||
        !info.sidecar["step"].is_number_integer())
      return "its sidecar names no step";
    info.step = info.sidecar["step"].get<std::int64_t>();
    if (!data) return {};
    for (const auto& entry : reader.entries()) {
      const bool weights = entry.name.rfind("student.", 0) == 0 || entry.name.rfind("teacher.", 0) == 0;
      if (!weights) continue;
      at::Tensor t = reader.tensor(entry.name);
      if (t.is_floating_point() && !at::isfinite(t).all().item<bool>())
        return "tensor " + entry.name + " holds non-finite values (NaN or infinity)";
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

CheckpointScan scan_dir(const std::string& dir, bool data) {
  CheckpointScan scan;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return scan;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".safetensors" || !entry.is_regular_file(ec)) continue;
    CheckpointInfo info;
    info.name = entry.path().stem().string();
    info.path = (fs::path(dir) / info.name).string();
    std::string problem = verify_checkpoint(info.path, data, info);
    if (problem.empty())
      scan.intact.push_back(std::move(info));
    else
      scan.damaged.push_back({info.path, problem});
  }
  std::sort(scan.intact.begin(), scan.intact.end(), checkpoint_before);
  std::sort(scan.damaged.begin(), scan.damaged.end(),
            [](const DamagedCheckpoint& a, const DamagedCheckpoint& b) { return a.path < b.path; });
  return scan;
}

}  // namespace

std::vector<CheckpointInfo> list_checkpoints(const std::string& dir) {
  return scan_dir(dir, false).intact;
}

CheckpointScan scan_checkpoints(const std::string& dir) {
  return scan_dir(dir, true);
}

std::optional<CheckpointInfo> latest_checkpoint(const CheckpointScan& scan) {
  if (scan.intact.empty()) return std::nullopt;
  return scan.intact.back();
}

std::optional<CheckpointInfo> latest_checkpoint(const std::string& dir) {
  return latest_checkpoint(scan_checkpoints(dir));
}

std::string set_aside(const DamagedCheckpoint& checkpoint) {
  std::string target;
  for (int k = 0;; ++k) {
    target = checkpoint.path + ".safetensors.damaged" + (k ? "." + std::to_string(k) : "");
    std::error_code ec;
    if (!fs::exists(target, ec) &&
        !fs::exists(checkpoint.path + ".json.damaged" + (k ? "." + std::to_string(k) : ""), ec))
      break;
  }
  const std::string suffix = target.substr((checkpoint.path + ".safetensors").size());
  std::error_code ec;
  fs::rename(checkpoint.path + ".safetensors", target, ec);
  if (ec)
    throw std::runtime_error("cannot rename " + checkpoint.path + ".safetensors aside: " + ec.message());
  if (fs::exists(checkpoint.path + ".json", ec))
    fs::rename(checkpoint.path + ".json", checkpoint.path + ".json" + suffix, ec);
  return target;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  util::write_file_atomic(path, text);
}

}  // namespace sefar::io
