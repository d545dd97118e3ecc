// Malformed pipelines and command lines through the real binary: every one exits with status 2 and
// a message naming the place (file:line, node, key or flag), never 0, 1 or a crash.
//
// Pipelines: tests/corpus/bad_pipelines/*.json, run from that folder (relative split lists resolve
// there). The first line of each is a comment
//   // expect: FRAGMENT
// with {file} standing for the file's path and {dir} for the corpus folder; a second line
//   // start-up check
// marks problems only `run` can see (node constructors: missing split lists, devices, budgets), which
// `validate` (no nodes built) accepts. Command lines: the table below.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "run_helpers.h"

namespace fs = std::filesystem;

namespace {

using sefar::testing::capture;
using sefar::testing::check_exit;
using sefar::testing::Result;  // status 128 + N when killed by signal N (a crash)
using sefar::testing::TempDir;

// The binary in `cwd` (relative paths in pipelines, such as split lists, resolve there); `timeout`
// turns a hang into a failure.
std::string command_for(const std::string& args, const std::string& cwd) {
  return "cd '" + cwd + "' && timeout -k 5 60 " + std::string(SEFAR_BINARY) + " " + args + " 2>&1 </dev/null";
}

Result run_cli(const std::string& args, const std::string& cwd = ".") {
  auto r = capture(command_for(args, cwd));
  REQUIRE(r.status != -2);
  return r;
}

// Runs every command line, a few at a time (each start of the binary costs ~0.5 s of LibTorch
// initialisation), and returns the results in order. Assertions stay on the calling thread.
std::vector<Result> sefar_all(const std::vector<std::string>& args, const std::string& cwd = ".") {
  std::vector<Result> results(args.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < args.size();) results[i] = capture(command_for(args[i], cwd));
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return results;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

const std::string kSource = SEFAR_SOURCE_DIR;
const std::string kCorpus = kSource + "/tests/corpus/bad_pipelines";

}  // namespace

// The corpus files in name order; `part` 0 or 1: every other one, so each test case stays short.
std::vector<fs::path> corpus_files(int part) {
  std::vector<fs::path> all, files;
  for (const auto& entry : fs::directory_iterator(kCorpus))
    if (entry.path().extension() == ".json") all.push_back(entry.path());
  std::sort(all.begin(), all.end());
  CHECK(all.size() >= 30);
  for (std::size_t i = part; i < all.size(); i += 2) files.push_back(all[i]);
  return files;
}

void check_corpus(const std::vector<fs::path>& files) {
  // `run` for every file; `validate` too for those found by the start-up checks: the same message.
  std::vector<std::string> expected, commands;
  std::vector<bool> run_only;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string first, second;
    std::getline(in, first);
    std::getline(in, second);
    const std::string marker = "// expect: ";
    REQUIRE_MESSAGE(first.rfind(marker, 0) == 0, file.string()
                                                     << ": first line must be \"" << marker << "...\"");
    expected.push_back(
        replace_all(replace_all(first.substr(marker.size()), "{file}", file.string()), "{dir}", kCorpus));
    // Found by the start-up checks (nodes built), not the schema: `validate` reports it as `run` does.
    run_only.push_back(second == "// start-up check");
    commands.push_back("run " + file.string() + " --quiet");
    if (run_only.back()) commands.push_back("validate " + file.string() + " --quiet");
  }
  const auto results = sefar_all(commands, kCorpus);
  std::size_t r = 0;
  for (std::size_t f = 0; f < files.size(); ++f) {
    CAPTURE(files[f].filename().string());
    check_exit(results[r++], 2, {expected[f], "sefar run: invalid pipeline"});  // run
    if (run_only[f]) check_exit(results[r++], 2, {expected[f]});                // validate
  }
}

TEST_CASE("every malformed pipeline of the corpus exits with status 2 and names the place (1/2)") {
  check_corpus(corpus_files(0));
}

TEST_CASE("every malformed pipeline of the corpus exits with status 2 and names the place (2/2)") {
  check_corpus(corpus_files(1));
}

struct Case {
  std::string args, expected;
};

void check_command_lines(const std::vector<Case>& cases) {
  std::vector<std::string> commands;
  for (const auto& c : cases) commands.push_back(c.args);
  const auto results = sefar_all(commands);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].args);
    check_exit(results[i], 2, {cases[i].expected});
  }
}

TEST_CASE("malformed command lines exit with status 2 and name the flag, key or file") {
  TempDir tmp("corpus");
  const std::string p = kSource + "/pipelines/examples/concurrency.json";
  const std::string q = kSource + "/pipelines/quickstart.json";
  const std::string t = tmp.path.string();
  std::ofstream(t + "/file.txt") << "x";
  // `sefar run` on the example pipeline, `sefar synth` into a folder of the temporary one.
  auto run_p = [&](const std::string& args, const std::string& expected) {
    return Case{"run " + p + " " + args, expected};
  };
  auto synth_s = [&](const std::string& args, const std::string& expected) {
    return Case{"synth " + t + "/s " + args, expected};
  };
  const std::vector<Case> cases = {
      {"", "usage: sefar <command>"},
      {"frobnicate", "unknown command \"frobnicate\""},
      {"rnu " + p, "unknown command \"rnu\" (did you mean \"run\"?)"},
      {"run", "missing PIPELINE"},
      {"run " + t + "/nonexistent.json", t + "/nonexistent.json: cannot open file"},
      {"run " + t, t + ": is a directory"},
      run_p("--bogus", "unknown option --bogus for 'run'"),
      run_p("--set", "--set needs a value"),
      run_p("--threads", "--threads needs a value"),
      run_p("--trace", "--trace needs a value"),
      run_p("--profile", "--profile needs a value"),
      run_p("--set items", "--set: \"items\": expected name=value or node.param=value"),
      run_p("--set =3", "--set: \"=3\": expected name=value"),
      run_p("--set itmes=3", "--set: \"itmes=3\": no pipeline parameter \"itmes\" (did you mean \"items\"?)"),
      run_p("--set wokr.ms=3",
            "--set: \"wokr.ms=3\": no node \"wokr\" in the pipeline (did you mean \"work\"?)"),
      run_p("--set work.msec=3", "--set: node 'work' (delay): no parameter \"msec\" in node type \"delay\""),
      run_p("--set work.ms=fast",
            "--set: node 'work' (delay): param \"ms\": expected a number, got a string"),
      run_p("--set work.ms=-5", "--set: node 'work' (delay): param \"ms\": value -5 is below the minimum 0"),
      run_p("--set items=-3", "node 'source' (range): param \"count\": value -3 is below the minimum 0"),
      run_p("--set items=1e40",
            "node 'source' (range): param \"count\": value 1e+40 is too large for an integer"),
      run_p("--set work.concurrency=many", "--set: node 'work' (delay): concurrency must be an integer"),
      run_p("--set 'work.concurrency=${nope}'",
            "--set: node 'work' (delay): concurrency: unknown pipeline parameter"),
      run_p("--threads abc", "--set: runtime \"threads\": expected an integer, got a string \"abc\""),
      run_p("--threads -1", "--set: runtime \"threads\": value -1 is below the minimum 0"),
      run_p("--set runtime.max_in_flight=0",
            "--set: runtime \"max_in_flight\": value 0 is below the minimum 1"),
      run_p("--set runtime.seed=-1", "--set: runtime \"seed\": value -1 is below the minimum 0"),
      run_p("--set 'work.ms=caf\xe9'",
            "--set: node 'work' (delay): param \"ms\": expected a number, got a string"),
      run_p("--set 'runtime.\xfe=1'", "--set: runtime: unknown setting"),
      run_p("--set runtime.treads=2",
            "--set: runtime: unknown setting \"treads\" (did you mean \"threads\"?)"),
      run_p("--set 'work.ms=" + std::string(100, '[') + std::string(100, ']') + "'",
            "--set: \"work.ms=...\": value nested deeper than 64 levels"),
      run_p("--trace " + t + "/file.txt/trace.json", "--trace: cannot write " + t + "/file.txt/trace.json"),
      run_p("--profile " + t, "--profile: cannot write " + t),
      run_p("--set runtime.run_dir=" + t + "/file.txt/run", "runtime \"run_dir\": cannot write"),
      {"run " + q + " --set decode_labeled.views=[]",
       "--set: node 'decode_labeled' (decode): param \"views\": expected at least 1 element(s), got 0"},
      {"run " + q + " --set device=tpu --set runtime.run_dir= --set val_list= --set train_list=" + kSource +
           "/tests/data/splits/official_style.csv --set unlabeled_list=" + kSource +
           "/tests/data/splits/official_style.csv",
       "model 'net' (sefar_model): param \"device\": unknown device 'tpu'"},
      {"run " + q + " --set runtime.run_dir= --set train_list=" + t + "/no_list.csv",
       "node 'labeled' (split_source): param \"list\": cannot open split list " + t + "/no_list.csv"},
      {"validate " + p + " extra", "unexpected argument extra"},
      {"validate " + p + " --dot", "unknown option --dot for 'validate'"},
      {"graph " + p, "choose an output format (--dot)"},
      {"nodes dekode", "no node type \"dekode\" (did you mean \"decode\"?)"},
      {"synth", "missing OUT_DIR"},
      synth_s("--classes", "--classes needs a value"),
      synth_s("--classes abc", "--classes: expected an integer, got \"abc\""),
      synth_s("--classes 99", "classes"),
      synth_s("--size 48", "--size: expected AxB, got \"48\""),
      synth_s("--frames 10", "--frames: expected A:B, got \"10\""),
      synth_s("--clases 3", "unknown option --clases (did you mean --classes?)"),
      synth_s("--fps nan", "fps must be in (0, 1000], got nan"),
      synth_s("--threads -2", "threads must be in [1, 1024], got -2"),
      synth_s("--classes 4294967299", "--classes: 4294967299 is out of range"),
      synth_s("--set x=1", "unknown option --set"),
      {"infer", "--weights, --inputs and --outputs are required"},
      {"infer --weights " + t + "/w.safetensors --inputs " + t + "/i.safetensors --outputs " + t +
           "/o.safetensors",
       t + "/w.safetensors"},
      {"infer --batch abc", "--batch: expected an integer, got \"abc\""},
      {"infer --weights", "--weights needs a value"},
      {"report", "missing RUN_DIR"},
      {"report " + t + "/none", t + "/none is not a directory"},
      {"report " + t, t + " holds no run (no metrics.jsonl, profile.json or evaluation.json)"},
  };
  CHECK(cases.size() >= 30);
  SUBCASE("first half") {
    check_command_lines({cases.begin(), cases.begin() + cases.size() / 2});
  }
  SUBCASE("second half") {
    check_command_lines({cases.begin() + cases.size() / 2, cases.end()});
  }
  // Nothing was written where the flags pointed.
  CHECK_FALSE(fs::exists(t + "/s"));
}

TEST_CASE(
    "an extends chain deeper than 16 files, and JSON nested too deeply, are rejected with their place") {
  TempDir tmp("corpus");
  const fs::path dir = tmp.path;
  for (int i = 0; i < 20; ++i) {
    std::ofstream out(dir / ("d" + std::to_string(i) + ".json"));
    out << "{\n  \"extends\": \"d" << (i + 1) << ".json\"\n}\n";
  }
  std::ofstream(dir / "d20.json") << R"({"nodes": {"src": {"type": "range"}}})";
  check_exit(run_cli("validate " + (dir / "d0.json").string()), 2,
             {":2: \"extends\" chain deeper than 16 files"});

  const std::string deep = (dir / "deep.json").string();
  std::ofstream(deep) << "{\"nodes\": {\"src\": {\"type\": \"range\", \"params\": {\"count\": \n"
                      << std::string(100000, '[') << std::string(100000, ']') << "}}}}";
  check_exit(run_cli("validate " + deep), 2, {deep + ":2:61: JSON nested deeper than 64 levels"});

  // Bytes that are not UTF-8 (a Latin-1 file name) are valid values: printed with U+FFFD.
  check_exit(run_cli("validate " + kSource +
                     "/pipelines/examples/concurrency.json --set 'runtime.run_dir=/tmp/caf\xe9'"),
             0, {"\"run_dir\": \"/tmp/caf\xef\xbf\xbd\""});
}

TEST_CASE("a configuration the data cannot satisfy stops the run with status 2 naming node and key") {
  TempDir tmp("corpus");
  const std::string t = tmp.path.string();
  REQUIRE(std::system(("ffmpeg -v error -nostdin -y -f lavfi -i testsrc=size=64x48:rate=25 -frames:v 10 " +
                       t + "/clip.mp4 >/dev/null 2>&1")
                          .c_str()) == 0);
  std::ofstream(t + "/list.csv") << "clip.mp4 0\n";
  std::ofstream(t + "/p.json") << R"({
  "nodes": {
    "clips": {"type": "split_source", "params": {"list": ")" +
                                      t + R"(/list.csv"}},
    "decode": {"type": "decode", "params": {"short_side": [16, 16]}},
    "views": {"type": "views", "params": {"crop": 32}},
    "sink": {"type": "discard"}
  },
  "edges": ["clips -> decode", "decode -> views", "views -> sink"]
})";
  check_exit(run_cli("run " + t + "/p.json --quiet"), 2,
             {"node 'views' (views) failed on item 0 (" + t + "/clip.mp4): param \"crop\": frames of 21x16"});
}
