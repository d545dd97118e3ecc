// util/atomic_file.h, the one file writer: whole or not at all, the temporary file never left
// behind, errors naming the path.
#include <doctest/doctest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "util/atomic_file.h"

namespace fs = std::filesystem;
using sefar::util::AtomicFile;
using sefar::util::WriteError;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

struct Dir {
  fs::path path = fs::temp_directory_path() / ("sefar_atomic_" + std::to_string(::getpid()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("a committed file replaces the target whole; folders are created") {
  Dir dir;
  const fs::path target = dir.path / "a" / "b" / "file.txt";
  sefar::util::write_file_atomic(target.string(), "first\n");
  CHECK(read(target) == "first\n");
  AtomicFile file(target.string());
  file.write("second ");
  file.write(std::string(1 << 20, 'x'));
  CHECK(read(target) == "first\n");  // not yet committed: the old file is what readers see
  CHECK(fs::exists(file.temp_path()));
  file.commit();
  CHECK(read(target).size() == 7 + (1u << 20));
  CHECK(entries(target.parent_path()) == 1);  // no temporary file left
}

TEST_CASE("a file abandoned before commit leaves the target as it was and no temporary file") {
  Dir dir;
  const fs::path target = dir.path / "keep.txt";
  sefar::util::write_file_atomic(target.string(), "kept");
  {
    AtomicFile file(target.string());
    file.write("half of a new ver");
  }  // e.g. an exception between the writes
  CHECK(read(target) == "kept");
  CHECK(entries(dir.path) == 1);
}

TEST_CASE("errors name the path and the reason") {
  Dir dir;
  std::ofstream(dir.path / "plain") << "a file, not a folder";
  const std::string path = (dir.path / "plain" / "out.txt").string();
  try {
    sefar::util::write_file_atomic(path, "x");
    FAIL("expected a WriteError");
  } catch (const WriteError& e) {
    CHECK(e.path() == path);
    CHECK(std::string(e.what()).find("cannot write " + path) == 0);
    CHECK(e.reason().find("cannot create the folder") != std::string::npos);
  }
  // A folder in the target's place: the rename fails, the temporary file is removed.
  fs::create_directories(dir.path / "taken" / "inside");
  CHECK_THROWS_AS(sefar::util::write_file_atomic((dir.path / "taken").string(), "x"), WriteError);
  CHECK(entries(dir.path) == 2);
}
