// Pipeline loading and validation: every error kind, with its message text and location, and the
// resolution of extends, --set and ${name}.
#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>
#include <fstream>

#include "graph/pipeline.h"
#include "graph/validate.h"
#include "nodes/auto_params.h"
#include "test_nodes.h"

using namespace sefar::graph;
using sefar::testing::Probe;
using sefar::testing::test_registry;

namespace {

std::vector<Diagnostic> problems_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  auto registry = test_registry(std::make_shared<Probe>());
  try {
    auto doc = parse_pipeline("p.json", text);
    apply_overrides(doc, sets);
    substitute_params(doc);
    validate(doc, registry);
  } catch (const PipelineError& e) {
    return e.diagnostics();
  }
  return {};
}

// The one diagnostic of `text`, which must contain `needle`.
Diagnostic single(const std::string& text, const std::string& needle, const std::vector<std::string>& sets = {}) {
  auto found = problems_of(text, sets);
  REQUIRE_MESSAGE(found.size() == 1, "expected one problem, got " << found.size() << ": "
                                                                   << (found.empty() ? "" : PipelineError(found).what()));
  INFO(found[0].format());
  CHECK(found[0].format().find(needle) != std::string::npos);
  return found[0];
}

// A valid pipeline to break in small ways: line 2 holds the name, 3 the params, 5 to 7 the nodes
// src, work and sink, 9 the edges.
const std::string kBase = sefar::testing::tracked_chain("t", 8, "1.0");

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  REQUIRE_MESSAGE(pos != std::string::npos, "test text lacks " << from);
  return s.replace(pos, from.size(), to);
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("sefar_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

}  // namespace

TEST_CASE("the base pipeline is valid") { CHECK(problems_of(kBase).empty()); }

TEST_CASE("JSON syntax errors give line and column") {
  auto d = single("{\n  \"name\": \"x\",\n  \"nodes\": {,}\n}", "JSON syntax error");
  CHECK(d.line == 3);
  CHECK(d.column == 13);
  CHECK(d.format().rfind("p.json:3:13: ", 0) == 0);
}

TEST_CASE("duplicate node ids are rejected") {
  auto text = replace(kBase, R"("sink": {"type": "collect_ordered"})",
                      "\"sink\": {\"type\": \"collect_ordered\"},\n    \"work\": {\"type\": \"jitter\"}");
  auto d = single(text, "duplicate node id 'work'");
  CHECK(d.line == 8);
}

TEST_CASE("unknown node type, with a suggestion") {
  auto d = single(replace(kBase, "\"jitter\"", "\"jiter\""), "unknown node type \"jiter\" (did you mean \"jitter\"?)");
  CHECK(d.node_id == "work");
  CHECK(d.line == 6);
}

TEST_CASE("unknown parameter, with a suggestion, naming file, line, node and type") {
  auto d = single(replace(kBase, "\"ms\": 1.0", "\"msec\": 1.0"),
                  "no parameter \"msec\" in node type \"jitter\" (did you mean \"ms\"?)");
  CHECK(d.format().rfind("p.json:6: node 'work' (jitter): ", 0) == 0);
}

TEST_CASE("missing required parameter") {
  auto text = replace(kBase, R"("type": "jitter", "params": {"ms": 1.0})", R"("type": "needs")");
  single(text, "missing required parameter \"path\" (string: a required path)");
}

TEST_CASE("wrong parameter type") {
  single(replace(kBase, "\"ms\": 1.0", "\"ms\": \"fast\""), "param \"ms\": expected a number, got a string \"fast\"");
  single(replace(kBase, "\"count\": \"${n}\"", "\"count\": 2.5"), "param \"count\": expected an integer, got a number 2.5");
  single(replace(kBase, "\"count\": \"${n}\"", "\"count\": 3.0"), "expected an integer, got 3.0 (write it without a decimal point)");
  single(replace(kBase, "\"count\": \"${n}\"", "\"count\": [1]"), "expected an integer, got a list [1]");
}

TEST_CASE("out-of-range values") {
  single(replace(kBase, "\"ms\": 1.0", "\"ms\": -1"), "param \"ms\": value -1 is below the minimum 0");
  single(replace(kBase, "\"count\": \"${n}\"", "\"count\": 99999999999999999999"), "value 1e+20 is too large for an integer");
  single(replace(kBase, "\"count\": \"${n}\"", "\"count\": 2000000000"), "value 2000000000 is above the maximum 1000000000");
  single(replace(kBase, "\"count\": \"${n}\"", "\"count\": -5"), "value -5 is below the minimum 0");
}

TEST_CASE("lists and choices") {
  auto needs = replace(kBase, R"("type": "jitter", "params": {"ms": 1.0})", R"("type": "needs", "params": {"path": "x"})");
  CHECK(problems_of(needs).empty());
  single(replace(needs, R"("path": "x")", R"("path": "x", "views": [])"), "param \"views\": expected at least 1 element(s), got 0");
  single(replace(needs, R"("path": "x")", R"("path": "x", "views": [2, "a"])"), "param \"views\": element 1: expected an integer");
  single(replace(needs, R"("path": "x")", R"("path": "x", "views": [2, 0])"), "element 1: value 0 is below the minimum 1");
  single(replace(needs, R"("path": "x")", R"("path": "x", "mode": "moderat")"),
         "value \"moderat\" is not one of: none, moderate, all_reverse (did you mean \"moderate\"?)");
}

TEST_CASE("unknown ports, with a suggestion") {
  single(replace(kBase, "work.out -> sink.in", "work.output -> sink.in"),
         "no output port \"output\" in node \"work\" (jitter) (did you mean \"out\"?)");
  auto found = problems_of(replace(kBase, "src.out -> work.in", "src.out -> work.inn"));
  REQUIRE(found.size() == 2);  // and work.in stays unconnected
  CHECK(found[0].format() == "p.json:9: node 'work' (jitter): edge \"src.out -> work.inn\": no input port \"inn\" in node \"work\" (jitter) (did you mean \"in\"?)");
}

TEST_CASE("edges to unknown nodes and malformed edges") {
  // The sink's input is then really unconnected: two problems.
  auto found = problems_of(replace(kBase, "work.out -> sink.in", "work.out -> snk.in"));
  REQUIRE(found.size() == 2);
  CHECK(found[0].format().find("edge \"work.out -> snk.in\": no node \"snk\" (did you mean \"sink\"?)") != std::string::npos);
  CHECK(found[1].format().find("node 'sink' (collect_ordered): input \"in\" is not connected") != std::string::npos);
  found = problems_of(replace(kBase, "work.out -> sink.in", "work.out sink.in"));
  REQUIRE(found.size() >= 1);
  CHECK(found[0].format().find("malformed edge \"work.out sink.in\": expected \"node.port -> node.port\"") != std::string::npos);
}

TEST_CASE("edges between incompatible ports") {
  auto text = replace(kBase, R"("sink": {"type": "collect_ordered"})", R"("sink": {"type": "collect_ordered"}, "b": {"type": "tbatch"}, "b2": {"type": "tbatch"})");
  text = replace(text, R"("work.out -> sink.in")", R"("work.out -> sink.in", "work.out -> b.in", "b.out -> b2.in")");
  single(text, "incompatible ports: b.out carries \"int\" but b2.in expects \"tracked\"");
}

TEST_CASE("unconnected required input") {
  auto d = single(replace(kBase, ", \"work.out -> sink.in\"", ""), "input \"in\" is not connected");
  CHECK(d.node_id == "sink");
}

TEST_CASE("cycles are rejected unless closed through a feedback input") {
  auto text = replace(kBase, R"("sink": {"type": "collect_ordered"})",
                      R"("sink": {"type": "collect_ordered"}, "m": {"type": "merge"}, "j2": {"type": "jitter"})");
  auto with_cycle = replace(text, R"("work.out -> sink.in")",
                            R"("work.out -> sink.in", "src.out -> m.left", "m.out -> j2.in", "j2.out -> m.right")");
  auto d = single(with_cycle, "the edges form a cycle through");
  CHECK(d.message.find("m") != std::string::npos);
  CHECK(d.message.find("j2") != std::string::npos);
  CHECK(d.message.find("work") == std::string::npos);
  auto with_feedback = replace(text, R"("work.out -> sink.in")",
                               R"("work.out -> sink.in", "src.out -> m.left", "src.out -> m.right", "m.out -> j2.in", "j2.out -> m.back")");
  CHECK(problems_of(with_feedback).empty());
}

TEST_CASE("ambiguous port shorthand and ordered inputs with two edges") {
  auto text = replace(kBase, R"("sink": {"type": "collect_ordered"})", R"("sink": {"type": "collect_ordered"}, "m": {"type": "merge"})");
  auto found = problems_of(replace(text, R"("work.out -> sink.in")", R"("work.out -> sink.in", "src -> m", "src.out -> m.right")"));
  REQUIRE(found.size() == 2);  // and m.left stays unconnected
  CHECK(found[0].format().find("node \"m\" has 3 inputs; name one (left, right, back)") != std::string::npos);
  single(replace(kBase, R"("work.out -> sink.in")", R"("work.out -> sink.in", "src.out -> sink.in")"),
         "input \"in\" restores source order and accepts exactly one edge");
}

TEST_CASE("unknown keys at the top level and in nodes") {
  single(replace(kBase, "\"edges\"", "\"edgs\": [], \"edges\""), "unknown top-level key \"edgs\" (did you mean \"edges\"?)");
  single(replace(kBase, "\"concurrency\": 2", "\"concurency\": 2"), "unknown key \"concurency\" in node (did you mean \"concurrency\"?)");
  single(replace(kBase, R"("sink": {"type": "collect_ordered"})", R"("sink": 3)"), "a node must be an object");
}

TEST_CASE("concurrency values") {
  single(replace(kBase, "\"concurrency\": 2", "\"concurrency\": 0"), "concurrency must be an integer in [1, 4096] or \"unlimited\", got 0");
  single(replace(kBase, "\"concurrency\": 2", "\"concurrency\": \"many\""), "concurrency must be an integer");
  CHECK(problems_of(replace(kBase, "\"concurrency\": 2", "\"concurrency\": \"unlimited\"")).empty());
  single(replace(kBase, R"("type": "collect_ordered")", R"("type": "collect_ordered", "concurrency": 4)"),
         "keeps state across items and runs with concurrency 1");
}

TEST_CASE("runtime block") {
  single(replace(kBase, "\"nodes\"", "\"runtime\": {\"thread\": 2}, \"nodes\""), "runtime: unknown setting \"thread\" (did you mean \"threads\"?)");
  single(replace(kBase, "\"nodes\"", "\"runtime\": {\"max_in_flight\": 0}, \"nodes\""), "runtime \"max_in_flight\": value 0 is below the minimum 1");
}

TEST_CASE("unknown ${name} references") {
  auto d = single(replace(kBase, "${n}", "${count}"), "unknown pipeline parameter \"${count}\"");
  CHECK(d.node_id == "src");
  CHECK(d.line == 5);
}

TEST_CASE("an empty pipeline") { single(R"({"name": "e", "nodes": {}})", "the pipeline has no nodes"); }

TEST_CASE("all problems are reported at once") {
  auto text = replace(kBase, "\"ms\": 1.0", "\"ms\": -1, \"bogus\": 1");
  text = replace(text, "collect_ordered", "collect_orderd");
  auto found = problems_of(text);
  REQUIRE(found.size() == 3);
  std::string all = PipelineError(found).what();
  CHECK(all.find("below the minimum") != std::string::npos);
  CHECK(all.find("no parameter \"bogus\"") != std::string::npos);
  CHECK(all.find("unknown node type \"collect_orderd\"") != std::string::npos);
}

TEST_CASE("${name} keeps the parameter's type; interpolation inside strings") {
  auto registry = test_registry(std::make_shared<Probe>());
  auto text = replace(kBase, R"("type": "jitter", "params": {"ms": 1.0})",
                      R"("type": "needs", "params": {"path": "data/${n}/x", "views": ["${n}", 4]})");
  auto doc = parse_pipeline("p.json", text);
  substitute_params(doc);
  CHECK(doc.find_node("src")->params["count"] == 8);
  CHECK(doc.find_node("work")->params["path"] == "data/8/x");
  CHECK(doc.find_node("work")->params["views"] == json::array({8, 4}));
}

TEST_CASE("--set overrides node params, runtime and pipeline params") {
  auto doc = parse_pipeline("p.json", kBase);
  apply_overrides(doc, {"n=3", "work.ms=2.5", "runtime.threads=4", "work.concurrency=8", "sink.ms=0"});
  substitute_params(doc);
  CHECK(doc.find_node("src")->params["count"] == 3);
  CHECK(doc.find_node("work")->params["ms"] == 2.5);
  CHECK(doc.find_node("work")->concurrency == 8);
  CHECK(doc.runtime["threads"] == 4);
  auto registry = test_registry(std::make_shared<Probe>());
  auto v = validate(doc, registry);
  CHECK(v.runtime.threads == 4);
  // A bare word is a string; the validator then names the wrong type.
  single(kBase, "param \"ms\": expected a number, got a string \"fast\"", {"work.ms=fast"});
  single(kBase, "no node \"wrk\" in the pipeline (did you mean \"work\"?)", {"wrk.ms=1"});
  single(kBase, "no pipeline parameter \"m\"", {"m=1"});
  single(kBase, "expected name=value or node.param=value", {"work.ms"});
}

TEST_CASE("extends: a derived file overrides, replaces and removes nodes of its base") {
  TempDir dir;
  dir.write("base.json", kBase);
  auto derived = dir.write("ablation.json", R"({
    "extends": "base.json",
    "name": "ablation",
    "params": {"n": 5},
    // comments are allowed in pipeline files
    "nodes": {
      "work": {"params": {"ms": 3.0}},
      "extra": {"type": "collect"}
    },
    "edges": ["work.out -> extra.in"]
  })");
  auto doc = load_pipeline(derived);
  substitute_params(doc);
  CHECK(doc.name == "ablation");
  CHECK(doc.find_node("src")->params["count"] == 5);
  CHECK(doc.find_node("work")->params["ms"] == 3.0);
  CHECK(doc.find_node("work")->concurrency == 2);  // kept from the base
  CHECK(doc.edges.size() == 3);
  auto registry = test_registry(std::make_shared<Probe>());
  CHECK(validate(doc, registry).nodes.size() == 4);

  // Changing a node's type replaces it (its old params no longer apply); null removes a node and its edges.
  auto swap = dir.write("swap.json", R"({"extends": "base.json", "nodes": {"sink": {"type": "collect"}}, "remove_edges": []})");
  auto swapped = load_pipeline(swap);
  CHECK(swapped.find_node("sink")->type == "collect");
  auto drop = dir.write("drop.json", R"({"extends": "base.json", "nodes": {"sink": null}})");
  auto dropped = load_pipeline(drop);
  CHECK(dropped.find_node("sink") == nullptr);
  CHECK(dropped.edges.size() == 1);

  // Problems found in a derived file name that file.
  auto bad = dir.write("bad.json", R"({"extends": "base.json",
    "nodes": {"work": {"params": {"ms": -3}}}})");
  try {
    auto d = load_pipeline(bad);
    substitute_params(d);
    validate(d, registry);
    FAIL("expected an error");
  } catch (const PipelineError& e) {
    REQUIRE(e.diagnostics().size() == 1);
    CHECK(e.diagnostics()[0].file == bad);
    CHECK(e.diagnostics()[0].line == 2);
  }
}

TEST_CASE("extends: cycles, missing bases and deep chains") {
  TempDir dir;
  dir.write("a.json", R"({"extends": "b.json"})");
  dir.write("b.json", R"({"extends": "a.json"})");
  try {
    load_pipeline((dir.path / "a.json").string());
    FAIL("expected an error");
  } catch (const PipelineError& e) {
    CHECK(std::string(e.what()).find("\"extends\" cycle") != std::string::npos);
  }
  auto missing = dir.write("m.json", R"({"extends": "nope.json"})");
  CHECK_THROWS_WITH_AS(load_pipeline(missing), doctest::Contains("nope.json does not exist"), PipelineError);
  for (int i = 0; i < 20; ++i)
    dir.write("d" + std::to_string(i) + ".json", "{\"extends\": \"d" + std::to_string(i + 1) + ".json\"}");
  dir.write("d20.json", kBase);
  CHECK_THROWS_WITH_AS(load_pipeline((dir.path / "d0.json").string()), doctest::Contains("chain deeper than 16"),
                       PipelineError);
  CHECK_THROWS_WITH_AS(load_pipeline((dir.path / "absent.json").string()), doctest::Contains("cannot open file"),
                       PipelineError);
}

TEST_CASE("the shipped pipelines validate") {
  auto registry = sefar::testing::test_registry(std::make_shared<Probe>());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(SEFAR_SOURCE_DIR) + "/pipelines")) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path().string());
    auto doc = load_pipeline(entry.path().string());
    // "auto" parameters are resolved first, as sefar does (placeholders: no weights here).
    sefar::nodes::resolve_auto_params(doc, /*lenient=*/true);
    substitute_params(doc);
    CHECK_NOTHROW(validate(doc, registry));
  }
}
