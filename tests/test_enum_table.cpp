// util/enum_table.h, one table per enum: names, parsing and choice lists from the same entries; and
// the project's tables, each of which must round-trip every value through its name.
// LibTorch first (through models/sefar.h): glog's CHECK must be replaced by doctest's.
#include "models/sefar.h"

#include <doctest/doctest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/schema.h"
#include "io/random.h"
#include "io/temporal.h"
#include "io/video.h"
#include "models/config.h"
#include "util/enum_table.h"

namespace {

enum class Colour { red, green, blue };

constexpr auto kColours = sefar::util::enum_table<Colour>(
    {
        {Colour::red, "red", "warm"},
        {Colour::green, "green", "calm"},
        {Colour::blue, "blue", "cold"},
    },
    "colour");

// Evaluated by the compiler: the table works in constant expressions.
static_assert(kColours.parse("green") == Colour::green);
static_assert(!kColours.parse("Green").has_value());
static_assert(std::string_view(kColours.name(Colour::blue)) == "blue");
static_assert(kColours.values()[2] == Colour::blue);
static_assert(kColours.size() == 3);

// Every value of a table has a distinct name that parses back to it.
template <class Table>
void check_round_trip(const Table& table) {
  CAPTURE(std::string(table.what()));
  std::set<std::string> seen;
  for (auto value : table.values()) {
    const std::string name = table.name(value);
    CAPTURE(name);
    CHECK(name != "unknown");
    CHECK(seen.insert(name).second);
    CHECK(table.parse(name) == value);
    CHECK(table.parse_or_throw(name) == value);
  }
  CHECK(table.names().size() == seen.size());
}

}  // namespace

TEST_CASE("enum table: names, parsing and choice lists come from one list") {
  CHECK(std::string(kColours.name(Colour::red)) == "red");
  CHECK(std::string(kColours.name(static_cast<Colour>(7))) == "unknown");
  CHECK(kColours.parse("blue") == Colour::blue);
  CHECK_FALSE(kColours.parse("").has_value());
  CHECK((kColours.names() == std::vector<std::string>{"red", "green", "blue"}));
  CHECK(kColours.joined() == "red, green, blue");
  CHECK(kColours.joined(", ", " or ") == "red, green or blue");
  CHECK(kColours.describe() == "red: warm; green: calm; blue: cold");
  CHECK_THROWS_WITH_AS(kColours.parse_or_throw("purple"), "unknown colour 'purple' (valid: red, green, blue)",
                       std::invalid_argument);
}

TEST_CASE("enum table: a repeated name or value is refused") {
  // At compile time (a constexpr table) this does not build; at run time it throws.
  enum class Two { a, b };
  CHECK_THROWS_AS(sefar::util::enum_table<Two>({{Two::a, "x"}, {Two::b, "x"}}, "two"), std::logic_error);
  CHECK_THROWS_AS(sefar::util::enum_table<Two>({{Two::a, "x"}, {Two::a, "y"}}, "two"), std::logic_error);
}

TEST_CASE("enum table: a schema's choice and the value a node reads") {
  using namespace sefar;
  graph::NodeSpec spec("paint");
  spec.param_choice("colour", Colour::green, kColours, "what to paint with");
  const graph::ParamSpec* param = spec.find_param("colour");
  REQUIRE(param);
  CHECK(param->choices == kColours.names());
  CHECK(param->default_value == "green");
  CHECK(graph::Params("node 'p' (paint)", {{"colour", "blue"}}).get_enum("colour", kColours) == Colour::blue);
  CHECK_THROWS_WITH_AS(graph::Params("node 'p' (paint)", {{"colour", "teal"}}).get_enum("colour", kColours),
                       "param \"colour\": unknown colour 'teal' (valid: red, green, blue)",
                       std::invalid_argument);
}

TEST_CASE("enum table: every table of the project round-trips") {
  using namespace sefar;
  check_round_trip(io::kPurposes);
  check_round_trip(io::kTemporalPerturbations);
  check_round_trip(io::kVideoErrorKinds);
  check_round_trip(io::kFfmpegLogs);
  check_round_trip(io::kVideoCodecs);
  check_round_trip(models::kAttentionImpls);
  check_round_trip(models::kParamInits);
  check_round_trip(models::kRegulations);
}

TEST_CASE("enum table: the names other places rely on") {
  using namespace sefar;
  // Skip categories in reports and skipped.jsonl.
  CHECK(std::string(io::to_string(io::VideoErrorKind::kNotVideo)) == "not_video");
  CHECK(std::string(io::to_string(io::VideoErrorKind::kIndexOutOfRange)) == "index_out_of_range");
  // SEFAR_FFMPEG_LOG's values (README).
  CHECK((io::kFfmpegLogs.names() == std::vector<std::string>{"quiet", "error", "warning", "info"}));
  // Model configs stored in weights files.
  CHECK(models::to_string(models::AttentionImpl::kFused) == "fused");
  CHECK(models::param_init_from_string("torch") == models::ParamInit::kTorch);
  CHECK_THROWS_WITH_AS(models::attention_impl_from_string("flash"),
                       "unknown attention implementation 'flash' (valid: auto, explicit, fused)",
                       std::invalid_argument);
  CHECK(models::to_string(models::Regulation::none) == "none");
}
