// FineGym preparation: plan (annotation, lists, what is already there), cut in parallel over source
// videos, then the rewritten lists and classes.txt.
#include "io/finegym_prepare.h"
#include "util/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "io/finegym.h"
#include "io/split_list.h"

namespace sefar::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kExtensions[] = {".mp4", ".mkv", ".webm"};
constexpr std::size_t kUnknownExamples = 5;

std::string format_duration(double s) {
  const long t = std::lround(std::max(0.0, s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Writes `text` to `path` whole or not at all (util::AtomicFile).
void write_file_atomic(const fs::path& path, const std::string& text) {
  try {
    util::write_file_atomic(path.string(), text);
  } catch (const util::WriteError& e) {
    throw CutOutputError(path.string(), e.reason());
  }
}

// "<clip>.mp4.tmp.<pid>.<n>" (util::AtomicFile's temporary files, which the encoder writes) left by
// a preparation that is no longer running: removed. Returns how many.
std::size_t remove_stale_temporaries(const fs::path& dir) {
  std::size_t removed = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::size_t at = name.rfind(".mp4.tmp.");
    if (at == std::string::npos) continue;
    const std::string rest = name.substr(at + 9);
    const std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || rest.find_first_not_of("0123456789.") != std::string::npos)
      continue;
    const long pid = std::stol(rest.substr(0, dot));
    if (pid == long(getpid()) || kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

struct Job {
  std::string video, source;
  std::vector<const FineGymClip*> clips;
  double seconds = 0;
};

}  // namespace

std::size_t FineGymPrepareResult::clips_skipped() const {
  std::size_t n = list_entries_unknown;
  for (const auto& p : problems) n += p.clips;
  return n;
}

std::string format_progress(const FineGymProgress& p) {
  const std::size_t processed = p.clips_done + p.clips_failed;
  std::string line = fmt::format("prepare finegym: {}/{} clips ({:.0f}%)", processed, p.clips,
                                 p.clips ? 100.0 * double(processed) / double(p.clips) : 100.0);
  if (p.clips_failed) line += fmt::format(", {} failed", p.clips_failed);
  if (processed && p.elapsed > 0) {
    line += fmt::format(", {:.1f} clips/s", double(processed) / p.elapsed);
    if (p.seconds_done > 0 && processed < p.clips)
      line += ", ETA " + format_duration((p.seconds - p.seconds_done) * p.elapsed / p.seconds_done);
  }
  return line;
}

FineGymPrepareResult prepare_finegym(const FineGymPrepareOptions& o, const FineGymLog& log_line,
                                     const std::function<void(const FineGymProgress&)>& progress) {
  auto log = [&](const std::string& s) {
    if (log_line) log_line(s);
  };
  if (o.jobs < 1 || o.jobs > 1024)
    throw std::invalid_argument(fmt::format("jobs must be in [1, 1024], got {}", o.jobs));
  std::error_code ec;
  if (!fs::is_directory(o.videos_dir, ec))
    throw std::invalid_argument(fmt::format("videos folder {}: not a directory", o.videos_dir));

  // Inputs, all read and checked before anything is written.
  const FineGymAnnotation annotation = load_finegym_annotation(o.annotation);
  std::vector<FineGymCategory> categories;
  if (!o.categories.empty()) categories = load_finegym_categories(o.categories);
  std::vector<SplitList> lists;
  std::set<std::string> list_names;
  for (const auto& file : o.lists) {
    SplitListOptions lo;
    lo.allow_missing_label = true;
    lists.push_back(load_split_list(file, "", lo));
    if (!list_names.insert(fs::path(file).filename().string()).second)
      throw std::invalid_argument(
          fmt::format("two lists named {}: their rewritten copies would overwrite each other (use another "
                      "--lists-out for each)",
                      fs::path(file).filename().string()));
  }

  FineGymPrepareResult result;
  std::set<std::string> wanted;  // empty: every clip
  std::set<std::string> annotated;
  for (const auto& c : annotation.clips) annotated.insert(c.name());
  for (const auto& b : annotation.bad_times) annotated.insert(b.clip);
  for (const auto& list : lists)
    for (const auto& entry : list.clips) {
      std::string name = clip_name_of(entry.path);
      if (!annotated.count(name)) {
        if (result.unknown_examples.size() < kUnknownExamples)
          result.unknown_examples.push_back(fmt::format("{}:{}: {}", list.source, entry.line, name));
        ++result.list_entries_unknown;
      }
      wanted.insert(std::move(name));
    }
  auto in_scope = [&](const std::string& name) { return lists.empty() || wanted.count(name) > 0; };
  for (const auto& b : annotation.bad_times)
    if (in_scope(b.clip))
      result.problems.push_back({b.clip, fmt::format("{}: {}: {}", o.annotation, b.key, b.reason)});

  const fs::path out_dir(o.out_dir);
  const fs::path lists_out = o.lists_out.empty() ? out_dir : fs::path(o.lists_out);
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir))
    throw std::invalid_argument(
        fmt::format("output folder {}: cannot be created: {}", o.out_dir, ec.message()));
  if (std::size_t n = remove_stale_temporaries(out_dir))
    log(fmt::format("removed {} unfinished clip file{} of an earlier preparation", n, n == 1 ? "" : "s"));

  // What is left to cut, grouped by source video.
  std::map<std::string, Job> by_video;
  for (const auto& c : annotation.clips) {
    if (!in_scope(c.name())) continue;
    ++result.clips_in_scope;
    if (fs::is_regular_file(out_dir / (c.name() + ".mp4"), ec) &&
        fs::file_size(out_dir / (c.name() + ".mp4"), ec) > 0) {
      ++result.clips_present;
      continue;
    }
    Job& job = by_video[c.video];
    job.video = c.video;
    job.clips.push_back(&c);
    job.seconds += c.duration();
  }
  result.clips_in_scope += result.problems.size();  // clips with bad times are in the scope too
  std::vector<Job> jobs;
  for (auto& [video, job] : by_video) {
    for (const char* ext : kExtensions) {
      const fs::path candidate = fs::path(o.videos_dir) / (video + ext);
      if (fs::exists(candidate, ec)) {
        job.source = candidate.string();
        break;
      }
    }
    if (job.source.empty()) {
      ++result.videos_missing;
      result.problems.push_back(
          {"video " + video,
           fmt::format("missing: none of {}.mp4, .mkv, .webm", (fs::path(o.videos_dir) / video).string()),
           job.clips.size()});
      log(fmt::format("missing source video {} ({} clip{}): none of {}.mp4, .mkv, .webm", video,
                      job.clips.size(), job.clips.size() == 1 ? "" : "s",
                      (fs::path(o.videos_dir) / video).string()));
      continue;
    }
    jobs.push_back(std::move(job));
  }
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const Job& a, const Job& b) { return a.seconds > b.seconds; });

  FineGymProgress& p = result.progress;
  p.videos = jobs.size();
  for (const auto& job : jobs) {
    p.clips += job.clips.size();
    p.seconds += job.seconds;
  }
  log(fmt::format("{} clips in scope: {} already there, {} to cut from {} video{}", result.clips_in_scope,
                  result.clips_present, p.clips, jobs.size(), jobs.size() == 1 ? "" : "s"));

  // Cutting.
  std::mutex mutex;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> abort{false};
  std::exception_ptr output_error;
  const auto started = std::chrono::steady_clock::now();
  CutOptions cut = o.cut;
  cut.stop = [&] { return abort.load() || (o.cut.stop && o.cut.stop()); };
  auto update = [&] {  // under the mutex
    p.elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (progress) progress(p);
  };
  auto worker = [&] {
    while (!cut.stop()) {
      const std::size_t j = next++;
      if (j >= jobs.size()) break;
      const Job& job = jobs[j];
      std::vector<CutRange> ranges;
      for (const auto* c : job.clips)
        ranges.push_back({c->start, c->end, (out_dir / (c->name() + ".mp4")).string()});
      std::vector<bool> finished(ranges.size(), false);
      try {
        cut_video(job.source, ranges, cut, [&](std::size_t i, const CutOutcome& outcome) {
          std::lock_guard<std::mutex> lock(mutex);
          finished[i] = true;
          p.seconds_done += job.clips[i]->duration();
          if (outcome.ok) {
            ++p.clips_done;
          } else {
            ++p.clips_failed;
            result.problems.push_back({job.clips[i]->name(), job.source + ": " + outcome.error});
            log(fmt::format("clip {} not cut: {}: {}", job.clips[i]->name(), job.source, outcome.error));
          }
          update();
        });
      } catch (const VideoError& e) {
        std::lock_guard<std::mutex> lock(mutex);
        std::size_t lost = 0;
        for (std::size_t i = 0; i < ranges.size(); ++i)
          if (!finished[i]) ++lost, p.seconds_done += job.clips[i]->duration();
        p.clips_failed += lost;
        ++result.videos_broken;
        result.problems.push_back(
            {"video " + job.video, fmt::format("{} ({})", e.what(), to_string(e.kind())), lost});
        log(fmt::format("source video {} skipped ({} clip{}): {} ({})", job.video, lost, lost == 1 ? "" : "s",
                        e.what(), to_string(e.kind())));
        update();
      } catch (...) {  // an output error (or worse): every worker stops
        std::lock_guard<std::mutex> lock(mutex);
        if (!output_error) output_error = std::current_exception();
        abort = true;
      }
      std::lock_guard<std::mutex> lock(mutex);
      ++p.videos_done;
    }
  };
  std::vector<std::thread> threads;
  const int n = std::max(1, std::min<int>(o.jobs, int(jobs.size())));
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  p.elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (output_error) std::rethrow_exception(output_error);
  if (o.cut.stop && o.cut.stop()) {
    result.stopped = true;
    return result;
  }

  // The lists, naming the prepared clips relative to where they are written, and classes.txt.
  if (!lists.empty() || !categories.empty()) {
    fs::create_directories(lists_out, ec);
    if (!fs::is_directory(lists_out)) throw CutOutputError(lists_out.string(), "cannot create the folder");
  }
  std::string prefix = fs::absolute(out_dir)
                           .lexically_normal()
                           .lexically_proximate(fs::absolute(lists_out).lexically_normal())
                           .generic_string();
  prefix = prefix == "." || prefix.empty() ? "" : prefix + "/";
  for (std::size_t l = 0; l < lists.size(); ++l) {
    std::string text;
    std::size_t kept = 0;
    for (const auto& entry : lists[l].clips) {
      const std::string name = clip_name_of(entry.path);
      if (!fs::is_regular_file(out_dir / (name + ".mp4"), ec)) continue;
      text += prefix + name + ".mp4" + (entry.label >= 0 ? fmt::format(" {}", entry.label) : "") + "\n";
      ++kept;
    }
    const fs::path target = lists_out / fs::path(o.lists[l]).filename();
    write_file_atomic(target, text);
    const std::size_t total = lists[l].clips.size();
    result.written.push_back(
        fmt::format("wrote {}: {} of {} clips{}", target.string(), kept, total,
                    kept < total ? fmt::format(" ({} not prepared, left out)", total - kept) : ""));
  }
  if (!categories.empty()) {
    const fs::path target = lists_out / "classes.txt";
    write_file_atomic(target, classes_txt(categories));
    result.written.push_back(
        fmt::format("wrote {}: {} classes from {}", target.string(), categories.size(), o.categories));
  }
  return result;
}

std::string format_summary(const FineGymPrepareResult& r, std::size_t max_listed) {
  const FineGymProgress& p = r.progress;
  std::string out = fmt::format(
      "prepare finegym: {} clips: {} cut now, {} already there, {} skipped ({} source video{} missing, {} "
      "unusable); {:.1f} s",
      r.clips_in_scope, p.clips_done, r.clips_present, r.clips_skipped() - r.list_entries_unknown,
      r.videos_missing, r.videos_missing == 1 ? "" : "s", r.videos_broken, p.elapsed);
  if (p.clips_done && p.elapsed > 0)
    out += fmt::format(", {:.2f} clips/s ({:.1f} s of video per second)", double(p.clips_done) / p.elapsed,
                       p.seconds_done / p.elapsed);
  out += r.stopped ? " (stopped early)\n" : "\n";
  if (!r.problems.empty()) {
    out += "skipped:\n";
    for (std::size_t i = 0; i < r.problems.size() && i < max_listed; ++i) {
      const auto& pr = r.problems[i];
      out += fmt::format("  {}{}: {}\n", pr.what, pr.clips == 1 ? "" : fmt::format(" ({} clips)", pr.clips),
                         pr.reason);
    }
    if (r.problems.size() > max_listed)
      out += fmt::format("  ... and {} more\n", r.problems.size() - max_listed);
  }
  if (r.list_entries_unknown) {
    out += fmt::format("{} list entr{} not in the annotation (left out), e.g.:\n", r.list_entries_unknown,
                       r.list_entries_unknown == 1 ? "y" : "ies");
    for (const auto& e : r.unknown_examples) out += "  " + e + "\n";
  }
  for (const auto& w : r.written) out += w + "\n";
  return out;
}

}  // namespace sefar::io
