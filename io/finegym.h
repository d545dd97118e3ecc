// FineGym's annotation files, read as pure functions (no video here: io/finegym_prepare.h cuts).
//
// finegym_annotation_info_v1.1.json maps YouTube video id -> event id -> event:
//   {"<video>": {"E_002018_002047": {"event": 1, "timestamps": [[2018.3, 2047.1]],
//                                    "segments": {"A_0004_0005": {"stages": 1, "timestamps": [[4.2, 5.6]]},
//                                                 ...}}}}
// Event timestamps are seconds in the source video; segment (sub-action) timestamps are seconds from
// the event's start, one [start, end] pair per stage (vaults have three): a sub-action spans the
// first stage's start to the last stage's end. "segments" is null for events without sub-actions.
// A sub-action's clip is named "<video>_<event>_<action>" (".mp4" added), the name the official
// Gym99/Gym288 split lists use, e.g. "Z0bBRwAzKe0_E_004093_004127_A_0010_0012.mp4 74".
//
// The category files (gym99_categories.txt, gym288_categories.txt) hold one class per line:
//   "Clabel:   0; set:  1; Glabel:   1; (VT) round-off, flic-flac with 0.5 turn on, ..."
// Clabel is the label the split lists use.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sefar::io {

// A malformed annotation or category file. what() names the file and every problem (up to 20) by its
// key path ("X4ajWw8L19s/E_002018_002047/segments/A_0004_0005/timestamps: ...") or line.
class FineGymError : public std::runtime_error {
 public:
  FineGymError(std::string file, std::vector<std::string> problems, std::size_t problem_count);
  const std::string& file() const { return file_; }
  const std::vector<std::string>& problems() const { return problems_; }
  std::size_t problem_count() const { return problem_count_; }

 private:
  std::string file_;
  std::vector<std::string> problems_;
  std::size_t problem_count_;
};

struct FineGymClip {
  std::string video;   // YouTube id
  std::string event;   // "E_002018_002047"
  std::string action;  // "A_0004_0005"
  int event_type = 0;  // "event": 1 VT, 2 FX, 3 BB, 4 UB (0 when absent)
  double start = 0;    // seconds in the source video
  double end = 0;

  std::string name() const;  // "<video>_<event>_<action>" (no extension)
  double duration() const { return end - start; }
};

// A clip whose times cannot be cut (end not after start, negative, not finite): kept out of `clips`.
struct FineGymBadTimes {
  std::string clip;    // the clip's name
  std::string key;     // "<video>/<event>/segments/<action>"
  std::string reason;  // "ends at 3.2 s, before it starts (4.1 s)"
};

struct FineGymAnnotation {
  std::string source;
  std::vector<FineGymClip> clips;  // in file order: video, event, sub-action
  std::size_t videos = 0;
  std::size_t events = 0;
  std::size_t events_without_segments = 0;  // "segments": null
  std::vector<FineGymBadTimes> bad_times;
};

// Parses the annotation text; `source` names it in errors. Structural problems (not JSON, wrong
// types, missing "timestamps", names that are not plain file names) throw FineGymError listing them;
// unusable times only exclude that clip (bad_times).
FineGymAnnotation parse_finegym_annotation(std::string_view text, const std::string& source);
// Reads a file (FineGymError when it cannot be read).
FineGymAnnotation load_finegym_annotation(const std::string& file);

struct FineGymCategory {
  int label = -1;         // Clabel
  int set = -1;           // -1 when absent
  int global_label = -1;  // Glabel, -1 when absent
  std::string name;       // "(VT) round-off, flic-flac with 0.5 turn on, ..."
};

// Parses a category file; throws FineGymError naming each bad line (`file:line: ...`) and duplicate
// labels. Blank lines are skipped.
std::vector<FineGymCategory> parse_finegym_categories(std::string_view text, const std::string& source);
std::vector<FineGymCategory> load_finegym_categories(const std::string& file);

// The project's classes.txt ("<label> <name>" per line, in label order; io/class_names.h reads it).
std::string classes_txt(const std::vector<FineGymCategory>& categories);

// The clip name a split-list path refers to: its file name without the extension
// ("/root/video/X_E_1_2_A_3_4.mp4" -> "X_E_1_2_A_3_4").
std::string clip_name_of(std::string_view listed_path);

}  // namespace sefar::io
