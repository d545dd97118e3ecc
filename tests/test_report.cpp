// The HTML run report: a fake run directory (metrics with warm-up and semi-supervised steps, epoch and
// eval lines with a 3x3 confusion matrix, a profile, a pipeline) renders every section with its SVG,
// escapes names, fetches nothing from the network, lists malformed lines and says which files are
// missing; write_report replaces report.html atomically. The metric records (io/metric_records.h)
// write the lines the training loop writes and read them back.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "io/class_names.h"
#include "io/metric_records.h"
#include "report/report.h"

namespace fs = std::filesystem;
using namespace sefar::report;
using sefar::io::read_class_names;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("sefar_report_" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) +
            "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size()))
    ++n;
  return n;
}

// The text of <section id="ID"> ... </section>.
std::string section(const std::string& html, const std::string& id) {
  auto begin = html.find("<section id=\"" + id + "\"");
  if (begin == std::string::npos) return {};
  auto end = html.find("</section>", begin);
  return html.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

const char* kMetrics =
    R"({"kind":"step","step":0,"epoch":0,"lr":0.1,"xi":0,"loss":2.3,"loss_sup":2.3,"loss_un":0,"loss_mix":0,"labeled":4,"unlabeled":0,"semi":false}
{"kind":"step","step":1,"epoch":0,"lr":0.1,"xi":0,"loss":2.1,"loss_sup":2.1,"loss_un":0,"loss_mix":0,"labeled":4,"unlabeled":0,"semi":false}
{"kind":"epoch","epoch":0,"steps":2,"seconds":1.5}
{"kind":"eval","epoch":0,"step":2,"clips":6,"top1":0.5,"top5":1.0,"mean_class_accuracy":0.5,"per_class_accuracy":[1,0.5,0],"confusion":[[2,0,0],[1,1,0],[0,2,0]],"seconds":0.2}
{"kind":"step","step":2,"epoch":1,"lr":0.1,"xi":0.5,"loss":1.9,"loss_sup":1.2,"loss_un":0.8,"loss_mix":0.6,"labeled":4,"unlabeled":8,"semi":true,"eta_mean":0.3,"eta_above_half":0.25,"mix_lambda":0.4,"pseudo_accuracy":0.5}
{"kind":"step","step":3,"epoch":1,"lr":0.1,"xi":0.5,"loss":1.7,"loss_sup":1.0,"loss_un":0.
{"kind":"step","step":3,"epoch":1,"lr":0.1,"xi":0.5,"loss":1.7,"loss_sup":1.0,"loss_un":0.7,"loss_mix":0.5,"labeled":4,"unlabeled":8,"semi":true,"eta_mean":0.6,"eta_above_half":0.625,"mix_lambda":0.6,"pseudo_accuracy":0.75}
{"kind":"epoch","epoch":1,"steps":2,"seconds":1.7,"eta_mean":0.45,"eta_above_half":0.4375}
{"kind":"eval","epoch":1,"step":4,"clips":6,"top1":0.8333,"top5":1.0,"mean_class_accuracy":0.8333,"per_class_accuracy":[1,1,0.5],"confusion":[[2,0,0],[0,2,0],[0,1,1]],"seconds":0.2}
)";

const char* kProfile = R"({"wall_seconds":3.5,"threads":2,"nodes":[
 {"id":"labeled","type":"split_source","slots":1,"items_in":0,"items_out":8,"skipped":0,"busy_seconds":0.01,"busy_fraction":0.003,"wait_input_seconds":3.49,"blocked_seconds":1.2,"items_per_second":0,"peak_queue":0,"peak_in_flight":4,"skip_reasons":[]},
 {"id":"dec<&>ode","type":"decode","slots":2,"items_in":8,"items_out":7,"skipped":1,"busy_seconds":0.7,"busy_fraction":0.1,"wait_input_seconds":6.3,"blocked_seconds":0,"items_per_second":2.3,"peak_queue":2,"peak_in_flight":0,"skip_reasons":["clip3.mp4: cannot <decode>"]},
 {"id":"train","type":"sefar_train","slots":1,"items_in":4,"items_out":0,"skipped":0,"busy_seconds":3.1,"busy_fraction":0.886,"wait_input_seconds":0.4,"blocked_seconds":0,"items_per_second":1.1,"peak_queue":3,"peak_in_flight":0,"skip_reasons":[]}]})";

const char* kPipeline = R"({"name":"tiny <run>","params":{"items":4},"runtime":{"threads":2,"seed":0},
 "nodes":{"labeled":{"type":"split_source","params":{"list":"train.csv"}},"train":{"type":"sefar_train","params":{}}},
 "edges":["labeled -> train.labeled"]})";

void write_fake_run(const fs::path& dir) {
  write_file(dir / "metrics.jsonl", kMetrics);
  write_file(dir / "profile.json", kProfile);
  write_file(dir / "pipeline.json", kPipeline);
  write_file(dir / "classes.txt", "0 turn<cw>\n1 turn&ccw\n2 jump\n");
}

}  // namespace

TEST_CASE("a full run directory: every section drawn, names escaped, nothing external") {
  TempDir tmp;
  write_fake_run(tmp.path);
  const std::string html = render_report(tmp.path.string());

  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(contains(html, "</html>"));
  for (const char* id : {"loss", "accuracy", "eta", "profile", "confusion"}) {
    CAPTURE(id);
    const std::string s = section(html, id);
    REQUIRE(!s.empty());
    CHECK(contains(s, "<svg"));
    CHECK(contains(s, "</svg>"));
    CHECK(!contains(s, "class=\"missing\""));
  }
  CHECK(contains(section(html, "loss"), "<polyline"));
  CHECK(contains(section(html, "accuracy"), "<polyline"));
  CHECK(contains(section(html, "accuracy"), "83.3%"));  // the last top-1

  // Node ids, escaped in the chart and the table; the busiest node named.
  const std::string profile = section(html, "profile");
  CHECK(contains(profile, ">labeled<"));
  CHECK(contains(profile, ">train<"));
  CHECK(contains(profile, "dec&lt;&amp;&gt;ode"));
  CHECK(contains(profile, "cannot &lt;decode&gt;"));
  CHECK(!contains(html, "dec<&>ode"));
  CHECK(contains(profile, "class=\"hot\">train<"));

  // Class names from classes.txt in the run directory, escaped; counts in the 3x3 cells.
  const std::string confusion = section(html, "confusion");
  CHECK(contains(confusion, "turn&lt;cw&gt;"));
  CHECK(contains(confusion, "turn&amp;ccw"));
  CHECK(!contains(html, "turn<cw>"));
  CHECK(contains(confusion, "after epoch 2"));   // the last evaluation
  CHECK(count(confusion, "class=\"cell") == 4);  // the nonzero cells of [[2,0,0],[0,2,0],[0,1,1]]

  // The pipeline's name is the title, escaped.
  CHECK(contains(html, "<h1>tiny &lt;run&gt;</h1>"));

  // Self-contained: no scripts, no links out; "http" only in the SVG namespace.
  CHECK(!contains(html, "<script"));
  CHECK(!contains(html, "<link"));
  CHECK(!contains(html, "src="));
  CHECK(count(html, "http") == count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(count(html, "<svg") == count(html, "xmlns=\"http://www.w3.org/2000/svg\""));

  // The malformed line is listed with its line number and skipped; the good steps remain.
  const std::string problems = section(html, "problems");
  CHECK(contains(problems, "metrics.jsonl:6: not JSON"));
  CHECK(contains(problems, "1 line(s) of metrics.jsonl were skipped"));
  CHECK(contains(section(html, "summary"), ">4</div>"));
  CHECK(contains(section(html, "summary"), "last: step 3, epoch 2"));

  // eta: per-step boxes for epoch 2 (no histogram in the file), and the epoch's share above 0.5.
  const std::string eta = section(html, "eta");
  CHECK(contains(eta, "per-step batch means"));
  CHECK(contains(eta, "43.8%"));
  CHECK(contains(eta, "0.450"));
}

TEST_CASE("epochs numbered from 1; a file of an earlier version numbered from 0 reads the same") {
  // kMetrics is such an earlier file (epochs 0 and 1); today's writes the same records with 1 and 2.
  // The same records with epochs counted from 1 (the malformed lines left as they are).
  std::string one_based;
  std::istringstream lines(kMetrics);
  for (std::string line; std::getline(lines, line);) {
    if (nlohmann::json::accept(line))
      for (auto [from, to] : {std::pair<std::string, std::string>{"\"epoch\":1", "\"epoch\":2"},
                              {"\"epoch\":0", "\"epoch\":1"}})
        if (auto pos = line.find(from); pos != std::string::npos) {
          line.replace(pos, from.size(), to);
          break;
        }
    one_based += line + "\n";
  }
  REQUIRE(one_based != kMetrics);
  CHECK(one_based.find("\"epoch\":0") == std::string::npos);
  TempDir legacy, today;
  write_fake_run(legacy.path);
  write_fake_run(today.path);
  write_file(today.path / "metrics.jsonl", one_based);
  const std::string html = render_report(today.path.string());
  auto without_dir = [](std::string text, const std::string& dir) {
    for (auto pos = text.find(dir); pos != std::string::npos; pos = text.find(dir)) text.replace(pos, dir.size(), "RUN");
    return text;
  };
  CHECK(without_dir(html, today.path.string()) ==
        without_dir(render_report(legacy.path.string()), legacy.path.string()));
  CHECK(contains(section(html, "confusion"), "after epoch 2"));
  CHECK(!contains(html, "epoch 3"));
}

TEST_CASE("throughput and gradient norm against the step, when the steps record them") {
  TempDir tmp;
  write_fake_run(tmp.path);
  CHECK(section(render_report(tmp.path.string()), "training").empty());  // kMetrics has neither
  std::string metrics;
  for (int step = 0; step < 40; ++step)
    metrics += "{\"kind\":\"step\",\"step\":" + std::to_string(step) +
               ",\"epoch\":1,\"loss\":1,\"loss_sup\":1,\"semi\":true,\"labeled\":4,\"unlabeled\":12,"
               "\"grad_norm\":" +
               std::to_string(2.0 + step % 3) + ",\"seconds\":" + std::to_string(step == 0 ? 8.0 : 0.5) + "}\n";
  write_file(tmp.path / "metrics.jsonl", metrics);
  const std::string training = section(render_report(tmp.path.string()), "training");
  REQUIRE(!training.empty());
  CHECK(count(training, "<svg") == 1);
  CHECK(count(training, "<polyline") >= 4);  // two series and their trends
  CHECK(contains(training, ">clips / s<"));
  CHECK(contains(training, ">gradient norm<"));
  // 16 clips in 0.5 s: 32 clips/s sets the axis; the slow first step (2 clips/s) does not squash it.
  CHECK(contains(training, ">30<"));
}

TEST_CASE("eta histograms in the epoch lines are drawn instead of the per-step boxes") {
  TempDir tmp;
  write_fake_run(tmp.path);
  std::string metrics = kMetrics;
  const std::string epoch1 = R"("eta_above_half":0.4375})";
  metrics.replace(metrics.find(epoch1), epoch1.size(),
                  R"("eta_above_half":0.4375,"eta_hist":[3,2,2,1,1,1,2,2,1,1]})");
  write_file(tmp.path / "metrics.jsonl", metrics);
  const std::string eta = section(render_report(tmp.path.string()), "eta");
  CHECK(contains(eta, "eta_hist"));
  CHECK(!contains(eta, "per-step batch means"));
  CHECK(contains(eta, "<svg"));
}

TEST_CASE("missing files: each section says so") {
  TempDir tmp;
  std::string html = render_report(tmp.path.string());
  CHECK(contains(section(html, "loss"), "No metrics.jsonl"));
  CHECK(contains(section(html, "confusion"), "No metrics.jsonl"));
  CHECK(contains(section(html, "profile"), "No profile.json"));
  CHECK(contains(section(html, "pipeline"), "No pipeline.json"));
  CHECK(!contains(html, "<svg"));

  // Metrics without evaluations, a profile that is not JSON.
  write_file(
      tmp.path / "metrics.jsonl",
      R"({"kind":"step","step":0,"epoch":0,"lr":0.1,"xi":0,"loss":2.3,"loss_sup":2.3,"loss_un":0,"loss_mix":0,"semi":false})"
      "\n");
  write_file(tmp.path / "profile.json", "{\"nodes\": [");
  html = render_report(tmp.path.string());
  CHECK(contains(section(html, "loss"), "<svg"));
  CHECK(contains(section(html, "accuracy"), "no eval records"));
  CHECK(contains(section(html, "eta"), "No semi-supervised steps"));
  CHECK(contains(section(html, "profile"), "not valid JSON"));

  CHECK_THROWS_AS(render_report((tmp.path / "nope").string()), std::invalid_argument);
}

TEST_CASE("an appended metrics file: the last run is shown, a resume replaces the later records") {
  TempDir tmp;
  const std::string step = R"({"kind":"step","epoch":0,"loss":1,"loss_sup":1,"semi":false,"step":)";
  write_file(tmp.path / "metrics.jsonl", step + "0}\n" + step + "1}\n" + step + "2}\n" + step + "0}\n" +
                                             step + "1}\n" + step + "1}\n" + step + "2}\n");
  const std::string html = render_report(tmp.path.string());
  CHECK(contains(section(html, "problems"), "holds 2 runs"));
  CHECK(contains(section(html, "problems"), "resumed at step 1"));
  CHECK(contains(section(html, "summary"), ">3</div>"));
}

TEST_CASE("class names: given, read from a file, or numbers") {
  TempDir tmp;
  write_fake_run(tmp.path);
  fs::remove(tmp.path / "classes.txt");
  const std::string numbered = section(render_report(tmp.path.string()), "confusion");
  CHECK(contains(numbered,
                 "text-anchor=\"end\" style=\"font-size:11.0px\">2</text>"));  // row label: the number
  CHECK(!contains(numbered, "turn"));

  ReportOptions given;
  given.class_names = {"alpha", "beta", "gamma"};
  CHECK(contains(section(render_report(tmp.path.string(), given), "confusion"), ">gamma</text>"));

  write_file(tmp.path / "names.txt", "# comment\n\nfirst\nsecond\nthird\n");
  ReportOptions from_file;
  from_file.classes_file = (tmp.path / "names.txt").string();
  CHECK(contains(section(render_report(tmp.path.string(), from_file), "confusion"), ">third</text>"));
  CHECK(read_class_names(from_file.classes_file) == std::vector<std::string>{"first", "second", "third"});

  write_file(tmp.path / "indexed.txt", "1 b b\r\n0 a\r\n");
  CHECK(read_class_names((tmp.path / "indexed.txt").string()) == std::vector<std::string>{"a", "b b"});
  CHECK_THROWS_AS(read_class_names((tmp.path / "none.txt").string()), std::runtime_error);
}

TEST_CASE("write_report writes report.html atomically") {
  TempDir tmp;
  write_fake_run(tmp.path);
  write_file(tmp.path / "report.html", "old");
  write_report(tmp.path.string());
  const std::string html = read_file(tmp.path / "report.html");
  CHECK(html == render_report(tmp.path.string()));  // deterministic
  CHECK(!fs::exists(tmp.path / "report.html.tmp"));
  CHECK_THROWS_AS(write_report((tmp.path / "nope").string()), std::invalid_argument);
}

TEST_CASE("an evaluation run's report shows its evaluation.json") {
  const fs::path dir = fs::temp_directory_path() / ("sefar_report_eval_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "evaluation.json")
      << R"({"clips": 4, "top1": 0.75, "top5": 1.0, "mean_class_accuracy": 0.75,
             "per_class_accuracy": [1.0, 0.5], "confusion": [[2, 0], [1, 1]], "weights": "model.safetensors"})";
  const std::string html = render_report(dir.string());
  CHECK(html.find("An evaluation run: its evaluation.json is shown") != std::string::npos);
  CHECK(html.find("75.0%") != std::string::npos);
  CHECK(html.find("evaluation.json, 4 clips") != std::string::npos);
  CHECK(html.find("No metrics.jsonl in the run directory") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("metric records: one field list writes a line and reads it back") {
  using namespace sefar::io;
  StepRecord step;
  step.step = 3;
  step.epoch = 1;
  step.lr = 0.0003;
  step.xi = 0;
  step.loss = step.loss_sup = 2.5;
  step.loss_un = step.loss_mix = 0;
  step.labeled = 8;
  step.unlabeled = 0;
  step.semi = false;
  step.grad_norm = std::numeric_limits<double>::quiet_NaN();  // a non-finite step: written as null
  step.skipped = "nonfinite";
  step.seconds = 0.25;
  // Keys sorted (nlohmann::json), integers as integers, the optional fields only when set.
  const std::string line = metrics_line(step).dump();
  CHECK(line ==
        R"({"epoch":1,"grad_norm":null,"kind":"step","labeled":8,"loss":2.5,"loss_mix":0.0,)"
        R"("loss_sup":2.5,"loss_un":0.0,"lr":0.0003,"seconds":0.25,"semi":false,"skipped":"nonfinite",)"
        R"("step":3,"unlabeled":0,"xi":0.0})");
  std::string problem = "not cleared";
  StepRecord back;
  REQUIRE(from_json(nlohmann::json::parse(line), back, problem));
  CHECK(problem.empty());
  CHECK(metrics_line(back).dump() == line);
  CHECK(record_kind(nlohmann::json::parse(line)) == "step");
  CHECK_FALSE(back.is_semi());

  EpochRecord epoch;
  epoch.epoch = 2;
  epoch.steps = 25;
  epoch.seconds = 1.5;
  epoch.eta_mean = 0.25;
  epoch.eta_hist = std::vector<std::int64_t>{1, 0, 3};
  const std::string epoch_line = metrics_line(epoch).dump();
  CHECK(epoch_line ==
        R"({"epoch":2,"eta_hist":[1,0,3],"eta_mean":0.25,"kind":"epoch","seconds":1.5,"steps":25})");
  EpochRecord epoch_back;
  REQUIRE(from_json(nlohmann::json::parse(epoch_line), epoch_back, problem));
  CHECK(metrics_line(epoch_back).dump() == epoch_line);

  EvalRecord eval;
  eval.clips = 3;
  eval.top1 = 2.0 / 3;
  eval.top5 = 1;
  eval.mean_class_accuracy = 0.75;
  eval.per_class_accuracy = {1, 0.5};
  eval.confusion = {{1, 0}, {1, 1}};
  eval.weights = "model.safetensors";  // an evaluation.json: no kind, epoch, step or seconds
  const std::string eval_json = to_json(eval).dump();
  CHECK(eval_json.find("\"kind\"") == std::string::npos);
  CHECK(eval_json.find("\"epoch\"") == std::string::npos);
  EvalRecord eval_back;
  REQUIRE(from_json(nlohmann::json::parse(eval_json), eval_back, problem));
  CHECK(problem.empty());
  CHECK(to_json(eval_back).dump() == eval_json);
}

TEST_CASE("metric records: what a record cannot do without, and what is dropped") {
  using namespace sefar::io;
  std::string problem;
  StepRecord step;
  CHECK_FALSE(from_json(nlohmann::json::parse(R"({"kind":"step","epoch":1})"), step, problem));
  CHECK(problem == "step record without an integer \"step\"");
  CHECK_FALSE(from_json(nlohmann::json::parse(R"({"kind":"step","step":"4","epoch":1})"), step, problem));
  CHECK(problem == "step record without an integer \"step\"");
  CHECK_FALSE(from_json(nlohmann::json::parse(R"({"kind":"step","step":4})"), step, problem));
  CHECK(problem == "step record without an integer \"epoch\"");
  // Integers written as doubles are integers; fields of the wrong type are absent; a record of an
  // earlier version without "semi" is semi-supervised when it has an eta_mean.
  REQUIRE(from_json(nlohmann::json::parse(R"({"step":4.0,"epoch":1,"lr":"x","labeled":4.0,"eta_mean":0.5})"),
                    step, problem));
  CHECK(step.step == 4);
  CHECK(std::isnan(step.lr));
  CHECK(step.labeled == std::optional<std::int64_t>(4));
  CHECK(step.is_semi());
  EpochRecord epoch;
  CHECK_FALSE(from_json(nlohmann::json::parse(R"({"kind":"epoch"})"), epoch, problem));
  CHECK(problem == "epoch record without an integer \"epoch\"");
  EvalRecord eval;
  REQUIRE(
      from_json(nlohmann::json::parse(R"({"epoch":1,"top1":0.5,"confusion":[[1,0],[1]]})"), eval, problem));
  CHECK(problem == "eval record: \"confusion\" is not a square matrix of numbers (matrix skipped)");
  CHECK(eval.confusion.empty());
  CHECK(eval.top1 == 0.5);
  REQUIRE(from_json(nlohmann::json::parse(R"({"confusion":[[1,0.5],[1,1]]})"), eval, problem));
  CHECK(problem == "eval record: \"confusion\" holds a count that is not a whole number (matrix skipped)");
}

TEST_CASE("rendering keeps no state: concurrent renders give the same page") {
  TempDir tmp;
  write_fake_run(tmp.path);
  const std::string once = render_report(tmp.path.string());
  CHECK(contains(once, "id=\"clip1\""));  // ids count from 1 in every document
  std::vector<std::string> pages(4);
  std::vector<std::thread> threads;
  for (auto& page : pages) threads.emplace_back([&] { page = render_report(tmp.path.string()); });
  for (auto& t : threads) t.join();
  for (const auto& page : pages) CHECK(page == once);
}
