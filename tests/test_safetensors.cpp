// safetensors reading and writing: round trips of every dtype, the byte layout of the format, files
// written by hand from the specification, and error messages for malformed files.
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/safetensors.h"

namespace fs = std::filesystem;
using sefar::io::load_safetensors;
using sefar::io::safetensors_dtype_name;
using sefar::io::SafetensorsReader;
using sefar::io::save_safetensors;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("sefar_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file as the specification describes it: 8-byte little-endian header length, header, data.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t{header.size()} >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string error_of(const std::string& path) {
  try {
    SafetensorsReader r(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: every dtype round-trips bit-exactly, with metadata") {
  TempDir dir;
  const std::string path = dir.file("all.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 4})},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({2, 3}).to(at::kBFloat16)},
      {"f64", at::randn({2, 2, 2}, at::kDouble)},
      {"i64", at::arange(-5, 6, at::kLong)},
      {"i32", at::arange(-3, 4, at::kInt).reshape({7, 1})},
      {"i16", at::arange(0, 9, at::kShort)},
      {"i8", at::arange(-4, 4, at::kChar)},
      {"u8", at::arange(250, 256, at::kInt).to(at::kByte)},
      {"bool", at::arange(0, 6, at::kLong).remainder(2).to(at::kBool)},
      {"scalar", at::randn({})},
      {"empty", at::zeros({0, 3})},
      {"strided", at::randn({4, 3}).t()},  // non-contiguous input
  };
  save_safetensors(path, tensors, {{"format", "pt"}, {"note", "hello"}});

  std::map<std::string, std::string> meta;
  auto loaded = load_safetensors(path, &meta);
  CHECK(meta.at("format") == "pt");
  CHECK(meta.at("note") == "hello");
  REQUIRE(loaded.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    REQUIRE(loaded.count(name));
    const at::Tensor& l = loaded.at(name);
    CHECK((l.scalar_type() == t.scalar_type()));
    CHECK(l.sizes() == t.sizes());
    CHECK(at::equal(l, t.contiguous()));
  }
  // Nothing but the file itself is left in the directory (the temporary was renamed).
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("safetensors: byte layout follows the specification") {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  at::Tensor a = at::arange(0, 5, at::kFloat), b = at::arange(0, 3, at::kByte),
             c = at::arange(0, 2, at::kLong);
  save_safetensors(path, std::map<std::string, at::Tensor>{{"a", a}, {"b", b}, {"c", c}}, {{"k", "v"}});
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  CHECK(n % 8 == 0);  // header padded so the data starts 8-aligned
  const std::string header = bytes.substr(8, n);
  CHECK(header.find_last_not_of(' ') < header.size());
  auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"]["k"] == "v");
  CHECK(j["a"]["dtype"] == "F32");
  CHECK(j["a"]["shape"] == nlohmann::json::array({5}));
  CHECK(j["b"]["dtype"] == "U8");
  CHECK(j["c"]["dtype"] == "I64");
  // Contiguous data, larger elements first (keeps each tensor aligned): c (8), a (4), b (1).
  CHECK(j["c"]["data_offsets"] == nlohmann::json::array({0, 16}));
  CHECK(j["a"]["data_offsets"] == nlohmann::json::array({16, 36}));
  CHECK(j["b"]["data_offsets"] == nlohmann::json::array({36, 39}));
  CHECK(bytes.size() == 8 + n + 39);
  float a2 = 0;
  std::memcpy(&a2, bytes.data() + 8 + n + 16 + 2 * 4, 4);
  CHECK(a2 == 2.0f);
}

TEST_CASE("safetensors: reads files written by hand from the specification") {
  TempDir dir;
  // Unpadded header of odd length: the data buffer starts misaligned, so the reader must copy.
  std::string data(16, '\0');
  const int32_t vals[4] = {1, -2, 3, 2147483647};
  std::memcpy(data.data(), vals, 16);
  const std::string header =
      R"({"__metadata__":{"who":"spec"},"t":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
  for (const std::string& h : {header, header + " "}) {
    const std::string path = dir.file("hand.safetensors");
    write_bytes(path, make_file(h, data));
    SafetensorsReader r(path);
    CHECK(r.metadata().at("who") == "spec");
    CHECK(r.names() == std::vector<std::string>{"t"});
    CHECK(r.entry("t").dtype == "I32");
    at::Tensor t = r.tensor("t");
    CHECK(t.sizes() == at::IntArrayRef({2, 2}));
    CHECK(t[0][1].item<int32_t>() == -2);
    CHECK(t[1][1].item<int32_t>() == 2147483647);
  }
}

TEST_CASE("safetensors: mapped tensors outlive the reader and never write the file") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  at::Tensor src = at::randn({64});
  save_safetensors(path, std::map<std::string, at::Tensor>{{"x", src}});
  at::Tensor t;
  {
    SafetensorsReader r(path);
    t = r.tensor("x");
  }
  CHECK(at::equal(t, src));
  t.fill_(7.0);  // private copy-on-write mapping
  CHECK(at::equal(SafetensorsReader(path).tensor("x"), src));
}

TEST_CASE("safetensors: overwriting replaces the file") {
  TempDir dir;
  const std::string path = dir.file("o.safetensors");
  save_safetensors(path, std::map<std::string, at::Tensor>{{"x", at::zeros({3})}});
  save_safetensors(path, std::map<std::string, at::Tensor>{{"y", at::zeros({2})}});
  CHECK(SafetensorsReader(path).names() == std::vector<std::string>{"y"});
}

TEST_CASE("safetensors: malformed files fail with the file and tensor named") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  auto expect = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    write_bytes(path, bytes);
    const std::string err = error_of(path);
    INFO(err);
    CHECK(err.find(path) != std::string::npos);
    for (const auto& p : parts) CHECK(err.find(p) != std::string::npos);
  };
  const std::string eight(8, '\0');
  expect("abc", {"shorter than"});
  expect(std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", {"header length"});
  expect(make_file("{not json", ""), {"not valid JSON"});
  expect(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')),
         {"'w'", "past the data buffer"});
  expect(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), {"'w'", "need 12"});
  expect(make_file(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", eight),
         {"'w'", "unknown dtype"});
  expect(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), {"'w'", "hole"});
  expect(make_file(R"({"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   eight),
         {"'v'", "overlaps"});
  expect(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight), {"cover 4 bytes"});
  expect(make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", eight.substr(0, 4)),
         {"'w'", "non-negative"});
  expect(make_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", eight.substr(0, 4)), {"'w'", "dtype"});
  CHECK(error_of(dir.file("does-not-exist")).find("cannot open") != std::string::npos);

  // A valid file: asking for an absent tensor names it.
  save_safetensors(path, std::map<std::string, at::Tensor>{{"x", at::zeros({1})}});
  try {
    SafetensorsReader(path).tensor("nope");
    FAIL("expected an error");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("'nope'") != std::string::npos);
  }
}

TEST_CASE("safetensors: writer rejects duplicate names and unsupported types, leaving no file") {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> dup = {{"a", at::zeros({1})}, {"a", at::zeros({2})}};
  CHECK_THROWS_WITH_AS(save_safetensors(path, dup), doctest::Contains("'a'"), std::runtime_error);
  std::vector<std::pair<std::string, at::Tensor>> cplx = {{"c", at::zeros({2}, at::kComplexFloat)}};
  CHECK_THROWS_WITH_AS(save_safetensors(path, cplx), doctest::Contains("'c'"), std::runtime_error);
  CHECK(!fs::exists(path));
  CHECK(safetensors_dtype_name(at::kBFloat16) == "BF16");
}
