// inspect_json: the metadata and tensor table of a File as a JSON document
// (schema "cy-llm.inspect/v1"). Strings are made valid UTF-8 (invalid bytes become
// U+FFFD) so that dumping never throws; f32 values print as their shortest decimal.
#include <charconv>
#include <cmath>
#include <map>

#include "cyllm/gguf.h"

namespace cyllm::gguf {

namespace {

constexpr std::uint64_t kInlineArrayMax = 16;  // longer arrays are summarised
constexpr std::uint64_t kHeadElems = 8;

// The shortest decimal that reads back as the same float, as a double (so that 1e-5f
// prints as 1e-05, not 9.999999747378752e-06). Locale-independent.
double float_for_json(float f) {
  if (!std::isfinite(f)) return static_cast<double>(f);
  char buf[32];
  const auto printed = std::to_chars(buf, buf + sizeof buf, f);
  double d = static_cast<double>(f);
  if (printed.ec == std::errc()) std::from_chars(buf, printed.ptr, d);
  return d;
}

// Copies s, replacing each byte that does not start or continue a valid UTF-8 sequence
// (overlongs, surrogates and code points above U+10FFFF included) with U+FFFD.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

nlohmann::ordered_json scalar_json(const Value& v) {
  switch (v.type()) {
    case ValueType::String: return valid_utf8(*v.as_string());
    case ValueType::Bool: return *v.as_bool();
    case ValueType::F32: return float_for_json(static_cast<float>(*v.as_f64()));
    case ValueType::F64: return *v.as_f64();
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
      return *v.as_i64();
    default: return *v.as_u64();
  }
}

nlohmann::ordered_json element_json(const Value& v, std::uint64_t i) {
  switch (v.elem_type()) {
    case ValueType::String: return valid_utf8(v.string_at(i));
    case ValueType::Bool: return v.int_at(i) != 0;
    case ValueType::F32: return float_for_json(static_cast<float>(v.float_at(i)));
    case ValueType::F64: return v.float_at(i);
    case ValueType::U64: return static_cast<std::uint64_t>(v.int_at(i));
    default: return v.int_at(i);
  }
}

nlohmann::ordered_json value_json(const Value& v) {
  if (v.type() != ValueType::Array) return scalar_json(v);
  if (v.elem_type() == ValueType::Array) {  // no element accessors: type and length only
    return {{"type", "array"}, {"elem_type", "array"}, {"length", v.size()}};
  }
  auto elems = [&](std::uint64_t n) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (std::uint64_t i = 0; i < n; ++i) a.push_back(element_json(v, i));
    return a;
  };
  if (v.size() <= kInlineArrayMax) return elems(v.size());
  return {{"type", "array"},
          {"elem_type", std::string(value_type_name(v.elem_type()))},
          {"length", v.size()},
          {"head", elems(kHeadElems)}};
}

}  // namespace

nlohmann::ordered_json inspect_json(const File& file) {
  nlohmann::ordered_json j;
  j["schema"] = "cy-llm.inspect/v1";
  if (!file.path().empty()) j["path"] = valid_utf8(file.path());
  j["version"] = file.version();
  j["alignment"] = file.alignment();
  j["file_size_bytes"] = file.file_size();
  j["data_offset"] = file.data_offset();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const KeyValue& kv : file.metadata()) meta[valid_utf8(kv.key)] = value_json(kv.value);
  j["metadata"] = std::move(meta);

  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  std::uint64_t n_params = 0;
  std::map<std::uint32_t, std::uint64_t> bytes_by_type;
  for (const TensorInfo& t : file.tensors()) {
    tensors.push_back({{"name", valid_utf8(t.name)},
                       {"type", std::string(traits(t.type).name)},
                       {"shape", t.ne},
                       {"offset", t.offset},
                       {"size_bytes", t.size_bytes}});
    n_params += t.n_elements();
    bytes_by_type[static_cast<std::uint32_t>(t.type)] += t.size_bytes;
  }
  j["tensors"] = std::move(tensors);
  nlohmann::ordered_json by_type = nlohmann::ordered_json::object();
  for (const auto& [type, bytes] : bytes_by_type) by_type[std::string(type_traits(type)->name)] = bytes;
  j["totals"] = {{"n_tensors", file.tensors().size()}, {"n_params", n_params}, {"bytes_by_type", std::move(by_type)}};
  return j;
}

}  // namespace cyllm::gguf
