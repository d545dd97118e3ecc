#include "io/safetensors.h"
#include "util/atomic_file.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "io/crc32c.h"

namespace sefar::io {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors stores little-endian data; this implementation copies bytes as they are"
#endif

namespace {

// The Python and Rust implementations refuse headers above 100 MB; a larger value is a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  const char* name;
  size_t size;
  bool supported;  // has an at::ScalarType here
  at::ScalarType type;
};

// Sizes of every dtype the format defines, so that files holding types we cannot load still validate
// and list; only `supported` ones become tensors.
const DtypeInfo kDtypes[] = {
    {"F64", 8, true, at::kDouble},    {"F32", 4, true, at::kFloat},     {"F16", 2, true, at::kHalf},
    {"BF16", 2, true, at::kBFloat16}, {"I64", 8, true, at::kLong},      {"I32", 4, true, at::kInt},
    {"I16", 2, true, at::kShort},     {"I8", 1, true, at::kChar},       {"U8", 1, true, at::kByte},
    {"BOOL", 1, true, at::kBool},     {"U16", 2, false, at::kByte},     {"U32", 4, false, at::kByte},
    {"U64", 8, false, at::kByte},     {"F8_E4M3", 1, false, at::kByte}, {"F8_E5M2", 1, false, at::kByte},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("safetensors file '" + path + "': " + what);
}

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name, const std::string& what) {
  throw std::runtime_error("safetensors file '" + path + "', tensor '" + name + "': " + what);
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.supported && d.type == type) return d.name;
  throw std::invalid_argument(std::string("safetensors cannot store tensors of type ") + c10::toString(type));
}

at::ScalarType safetensors_scalar_type(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  if (!d) throw std::invalid_argument("unknown safetensors dtype '" + dtype + "'");
  if (!d->supported) throw std::invalid_argument("safetensors dtype '" + dtype + "' is not supported here");
  return d->type;
}

struct SafetensorsReader::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  const uint8_t* data = nullptr;  // start of the data buffer
  uint64_t data_size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) munmap(addr, size);
  }
};

SafetensorsReader::SafetensorsReader(const std::string& path)
    : path_(path), map_(std::make_shared<Mapping>()) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  }
  // Private and writable: tensors handed out may be modified in place (copy-on-write pages) without
  // touching the file or faulting.
  void* addr = mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (addr == MAP_FAILED) fail(path, std::string("cannot map: ") + std::strerror(map_err));
  map_->addr = addr;
  map_->size = file_size;
  const auto* bytes = static_cast<const uint8_t*>(addr);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " does not fit a file of " +
                   std::to_string(file_size) + " bytes");
  map_->data = bytes + 8 + header_len;
  map_->data_size = file_size - 8 - header_len;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__ value '" + m.key() + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail_tensor(path, name, "entry is not an object");
    SafetensorsEntry e;
    e.name = name;
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) fail_tensor(path, name, "missing or non-string 'dtype'");
    if (sh == v.end() || !sh->is_array()) fail_tensor(path, name, "missing or non-array 'shape'");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      fail_tensor(path, name, "'data_offsets' must be an array of two integers");
    e.dtype = dt->get<std::string>();
    const DtypeInfo* info = find_dtype(e.dtype);
    if (!info) fail_tensor(path, name, "unknown dtype '" + e.dtype + "'");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        fail_tensor(path, name, "shape entries must be non-negative integers");
      const uint64_t n = d.get<uint64_t>();
      if (n != 0 && numel > (uint64_t{1} << 62) / n) fail_tensor(path, name, "shape is too large");
      numel *= n;
      e.shape.push_back(static_cast<int64_t>(n));
    }
    for (const auto& o : *off)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        fail_tensor(path, name, "'data_offsets' must be non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.end < e.begin) fail_tensor(path, name, "data_offsets end before begin");
    if (e.end > map_->data_size)
      fail_tensor(path, name,
                  "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                      "] run past the data buffer of " + std::to_string(map_->data_size) + " bytes");
    if (e.end - e.begin != numel * info->size)
      fail_tensor(path, name,
                  "holds " + std::to_string(e.end - e.begin) + " bytes but dtype " + e.dtype + " and shape " +
                      shape_string(e.shape) + " need " + std::to_string(numel * info->size));
    entries_.push_back(std::move(e));
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;

  // The buffer must be covered exactly: overlaps would alias tensors, holes hide data.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  for (const auto* e : by_offset) {
    if (e->begin != pos)
      fail_tensor(path, e->name,
                  std::string(e->begin < pos ? "overlaps the previous tensor" : "leaves a hole before it") +
                      " (begins at " + std::to_string(e->begin) + ", expected " + std::to_string(pos) + ")");
    pos = e->end;
  }
  if (pos != map_->data_size)
    fail(path, "tensors cover " + std::to_string(pos) + " bytes of a data buffer of " +
                   std::to_string(map_->data_size));
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

const SafetensorsEntry& SafetensorsReader::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail_tensor(path_, name, "no such tensor");
  return entries_[it->second];
}

at::Tensor SafetensorsReader::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DtypeInfo* info = find_dtype(e.dtype);
  if (!info->supported) fail_tensor(path_, name, "dtype " + e.dtype + " is not supported here");
  auto options = at::TensorOptions().dtype(info->type).device(at::kCPU);
  const uint8_t* src = map_->data + e.begin;
  const uint64_t nbytes = e.end - e.begin;
  if (nbytes == 0) return at::empty(e.shape, options);
  if (reinterpret_cast<uintptr_t>(src) % info->size != 0) {
    // Files from writers that do not align (or pad the header) get a copy rather than a misaligned view.
    at::Tensor t = at::empty(e.shape, options);
    std::memcpy(t.data_ptr(), src, nbytes);
    return t;
  }
  auto* keep = new std::shared_ptr<Mapping>(map_);
  return at::for_blob(const_cast<uint8_t*>(src), e.shape)
      .context(keep, [](void* ctx) { delete static_cast<std::shared_ptr<Mapping>*>(ctx); })
      .options(options)
      .make_tensor();
}

std::map<std::string, at::Tensor> SafetensorsReader::tensors() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& e : entries_) out.emplace(e.name, tensor(e.name));
  return out;
}

std::string SafetensorsReader::data_problem() const {
  auto it = metadata_.find(kDataChecksumKey);
  if (it == metadata_.end()) return {};
  const std::string actual = crc32c_hex(crc32c(map_->data, map_->data_size));
  if (actual == it->second) return {};
  return "data checksum " + actual + " does not match the " + it->second + " stored in its header";
}

std::map<std::string, at::Tensor> load_safetensors(const std::string& path,
                                                   std::map<std::string, std::string>* metadata) {
  SafetensorsReader reader(path);
  if (metadata) *metadata = reader.metadata();
  return reader.tensors();
}


void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    std::string name;
    at::Tensor t;  // contiguous CPU
    size_t elem;
  };
  std::vector<Item> items;
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty()) fail(path, "a tensor has an empty name");
    if (name == "__metadata__") fail(path, "'__metadata__' cannot name a tensor");
    if (!seen.insert(name).second) fail_tensor(path, name, "name given twice");
    if (!tensor.defined()) fail_tensor(path, name, "tensor is undefined");
    std::string dtype;
    try {
      dtype = safetensors_dtype_name(tensor.scalar_type());
    } catch (const std::exception& ex) {
      fail_tensor(path, name, ex.what());
    }
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    items.push_back({name, t, find_dtype(dtype)->size});
  }
  // Larger elements first keeps every tensor aligned to its element size, given an 8-aligned start.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.elem != b.elem ? a.elem > b.elem : a.name < b.name;
  });

  // The data section's checksum, checked by SafetensorsReader::data_problem().
  std::uint32_t crc = 0;
  for (const auto& it : items)
    if (it.t.nbytes() > 0) crc = crc32c(it.t.data_ptr(), it.t.nbytes(), crc);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    m[kDataChecksumKey] = crc32c_hex(crc);
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& it : items) {
    const uint64_t nbytes = it.t.nbytes();
    header[it.name] = {{"dtype", safetensors_dtype_name(it.t.scalar_type())},
                       {"shape", it.t.sizes().vec()},
                       {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>((uint64_t{text.size()} >> (8 * i)) & 0xff);

  // A failure is a util::WriteError naming the file: the runtime maps it to exit 74.
  util::AtomicFile file(path);
  file.write(len_bytes, 8);
  file.write(text);
  for (const auto& it : items)
    if (it.t.nbytes() > 0) file.write(it.t.data_ptr(), it.t.nbytes());
  file.commit();
}

void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, std::vector<std::pair<std::string, at::Tensor>>(tensors.begin(), tensors.end()),
                   metadata);
}

}  // namespace sefar::io
