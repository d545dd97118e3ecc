// Preparing FineGym: every sub-action of the annotation cut out of its downloaded source video into
// <out_dir>/<video>_<event>_<action>.mp4, the names the official split lists use.
//
// - Parallel over source videos (`jobs` at a time, longest work first); each video is read once
//   forward per group of nearby sub-actions (io/video_cut.h).
// - Resumable: a clip whose file exists is done (clips appear only complete, by rename); stale
//   temporary files of an earlier, killed preparation are removed.
// - A missing or unusable source video, or a clip that cannot be cut, is reported and skipped; the
//   rest goes on. Input errors (annotation, lists, categories, folders) throw before anything is cut.
// - With split lists: only the clips they name are cut, and a copy of each list is written to
//   `lists_out` naming the prepared clips by paths relative to it; with categories, classes.txt.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "io/video_cut.h"

namespace sefar::io {

struct FineGymPrepareOptions {
  std::string annotation;          // finegym_annotation_info_v1.1.json
  std::string videos_dir;          // <video id>.mp4 / .mkv / .webm
  std::string out_dir;             // the clips
  std::vector<std::string> lists;  // official split lists: cut only the clips they name
  std::string lists_out;           // rewritten lists and classes.txt (empty: out_dir)
  std::string categories;          // gym99_categories.txt / gym288_categories.txt (empty: none)
  int jobs = 1;                    // source videos cut at once
  CutOptions cut;                  // output size, encoder, stop request
};

struct FineGymProgress {
  std::size_t clips = 0;         // clips to cut in this run (their source video found)
  std::size_t clips_done = 0;    // of those: written
  std::size_t clips_failed = 0;  // of those: not written (broken video, cut failed)
  double seconds = 0;            // clip seconds to cut
  double seconds_done = 0;       // clip seconds processed (written or failed)
  double elapsed = 0;            // wall seconds since cutting started
  std::size_t videos = 0, videos_done = 0;
};
// "prepare finegym: 120/480 clips (25%), 2 failed, 3.1 clips/s, ETA 1m56s" (no ETA before the first
// clip). The ETA is the remaining clip seconds at the rate measured so far.
std::string format_progress(const FineGymProgress& p);

struct FineGymProblem {
  std::string what;    // "video X4ajWw8L19s" or a clip name
  std::string reason;  // names the file where there is one
  std::size_t clips = 1;
};

struct FineGymPrepareResult {
  std::size_t clips_in_scope = 0;  // annotated clips wanted (all, or those the lists name)
  std::size_t clips_present = 0;   // already there before this run
  std::size_t videos_missing = 0, videos_broken = 0;
  FineGymProgress progress;              // the run's final counts
  std::vector<FineGymProblem> problems;  // every skip: missing and broken videos, failed clips, bad times
  std::size_t list_entries_unknown = 0;  // list entries the annotation does not have
  std::vector<std::string> unknown_examples;  // the first few of them, "<list>:<line>: <name>"
  std::vector<std::string> written;           // "wrote FILE: ..." for lists and classes.txt
  bool stopped = false;                       // the stop request ended it early (nothing written after)

  std::size_t clips_skipped() const;  // clips of the scope not prepared, list entries unknown included
};

// Lines of information as the preparation goes (what it found, each problem as it happens).
using FineGymLog = std::function<void(const std::string&)>;

// Throws FineGymError / SplitListError / std::invalid_argument for bad input (nothing written yet),
// CutOutputError when a clip or list cannot be written (the preparation stops).
FineGymPrepareResult prepare_finegym(const FineGymPrepareOptions& options, const FineGymLog& log = {},
                                     const std::function<void(const FineGymProgress&)>& progress = {});

// The closing report: counts, rate, every problem (the first `max_listed`), the files written.
std::string format_summary(const FineGymPrepareResult& result, std::size_t max_listed = 20);

}  // namespace sefar::io
