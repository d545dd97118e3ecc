// The quickstart does what the README says: trained as scripts/quickstart.sh trains it (its dataset
// made by scripts/quickstart_data.sh, 2 LibTorch threads), its final validation top-1 is within a few
// points of the README's "about N%" and of the figure bench/quickstart/run.sh recorded in
// docs/QUICKSTART.md, and that recorded figure is clearly above the supervised run of the same length.
#include <regex>

#include "run_helpers.h"

using namespace sefar::testing;

namespace {

constexpr double kDrift = 3.0;   // points: the figures must be re-measured beyond this
constexpr double kMargin = 5.0;  // points: "clearly above" the supervised baseline

double recorded(const std::string& doc, const std::string& key) {
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(doc, m, std::regex(key + "=([0-9.]+)")),
                  "docs/QUICKSTART.md has no " << key << ": run bash bench/quickstart/run.sh");
  return std::stod(m[1]);
}

}  // namespace

TEST_CASE("the quickstart's accuracy is the README's and clearly above supervised training") {
  const fs::path source = SEFAR_SOURCE_DIR;
  const std::string readme = read_text(source / "README.md");
  std::smatch m;
  REQUIRE(std::regex_search(readme, m, std::regex(R"(about ([0-9]+)% top-1)")));
  const double documented = std::stod(m[1]);
  const std::string doc = read_text(source / "docs" / "QUICKSTART.md");
  const double bench_semi = recorded(doc, "quickstart_top1"), bench_sup = recorded(doc, "supervised_top1");

  TempDir dir("quickstart");
  const fs::path data = dir.path / "data";
  auto made = capture("SEFAR=" + std::string(SEFAR_BINARY) + " bash " +
                      (source / "scripts" / "quickstart_data.sh").string() + " " + data.string() + " 2>&1");
  INFO(made.output);
  REQUIRE(made.status == 0);
  auto r = run_sefar("run " + (source / "pipelines" / "quickstart.json").string() +
                     " --quiet --set runtime.threads=2 --set train_list=" + (data / "train.csv").string() +
                     " --set unlabeled_list=" + (data / "unlabel.csv").string() + " --set val_list=" +
                     (data / "val.csv").string() + " --set runtime.run_dir=" + (dir.path / "run").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  double top1 = -1;
  for (const auto& rec : records(dir.path / "run"))
    if (rec.value("kind", "") == "eval") top1 = 100 * rec["top1"].get<double>();
  MESSAGE("quickstart top-1 " << top1 << "%; README about " << documented << "%; docs/QUICKSTART.md "
                              << bench_semi << "% (supervised " << bench_sup << "%)");
  CHECK(std::abs(top1 - documented) <= kDrift);
  CHECK(std::abs(top1 - bench_semi) <= kDrift);
  CHECK(bench_semi - bench_sup >= kMargin);
}
