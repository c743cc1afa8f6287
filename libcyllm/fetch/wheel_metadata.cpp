// The two text files inside a wheel's .dist-info that we trust only after parsing:
//
//   METADATA   RFC 822 style:  "Key: value" lines; a line starting with space or tab
//              continues the previous value; the first empty line ends the headers (the
//              long description follows and is ignored).
//   RECORD     CSV, one row per file:  path,algorithm=urlsafe_b64(digest) without '=',size
//              with Python csv quoting ("a,b.py" quoted, "" for a quote inside quotes).
#include <algorithm>

#include "cyllm/wheelhouse.h"
#include "util/strings.h"

namespace cyllm::wheelhouse {
namespace {

Error bad(std::string message) { return Error(Errc::BadWheel, std::move(message)); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && util::to_lower(a) == util::to_lower(b);
}

// urlsafe base64 without padding -> bytes; nullopt on any other character or a length
// that no unpadded encoding has (n % 4 == 1).
std::optional<std::string> decode_b64url(std::string_view s) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);  // tolerate padding
  if (s.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(s.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// One CSV row starting at `pos`; advances `pos` past its line end. Quoted fields may span
// lines. nullopt on an unterminated quote or text after a closing quote.
std::optional<std::vector<std::string>> csv_row(std::string_view text, std::size_t& pos) {
  std::vector<std::string> fields(1);
  bool quoted = false, was_quoted = false;
  while (pos < text.size()) {
    char c = text[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < text.size() && text[pos] == '"') {
          fields.back().push_back('"');
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        fields.back().push_back(c);
      }
      continue;
    }
    if (c == ',') {
      fields.emplace_back();
      was_quoted = false;
    } else if (c == '\n') {
      return fields;
    } else if (c == '\r') {
      if (pos < text.size() && text[pos] == '\n') ++pos;
      return fields;
    } else if (c == '"' && fields.back().empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (was_quoted) {
      return std::nullopt;  // text after the closing quote
    } else {
      fields.back().push_back(c);
    }
  }
  if (quoted) return std::nullopt;
  return fields;
}

}  // namespace

Result<WheelMetadata> parse_wheel_metadata(std::string_view text) {
  if (text.size() > kMaxMetadataBytes)
    return bad("METADATA is " + std::to_string(text.size()) + " bytes; the limit is " +
               std::to_string(kMaxMetadataBytes));
  WheelMetadata m;
  bool have_name = false, have_version = false;
  std::string key, value;
  std::size_t line_no = 0, key_line = 0;
  auto flush = [&]() -> Result<void> {
    if (key.empty()) return {};
    std::string v(util::trim(value));
    auto dup = [&](std::string_view what) {
      return bad("METADATA line " + std::to_string(key_line) + ": " + std::string(what) +
                 " appears twice");
    };
    if (iequals(key, "Name")) {
      if (have_name) return dup("Name");
      m.name = v;
      have_name = true;
    } else if (iequals(key, "Version")) {
      if (have_version) return dup("Version");
      m.version = v;
      have_version = true;
    } else if (iequals(key, "Metadata-Version")) {
      m.metadata_version = v;
    } else if (iequals(key, "Requires-Python")) {
      m.requires_python = v;
    } else if (iequals(key, "Requires-Dist")) {
      m.requires_dist.push_back(v);
    }
    key.clear();
    value.clear();
    return {};
  };
  for (auto line : util::split_lines(text)) {
    ++line_no;
    if (line.empty()) break;  // end of headers; the body is the description
    if (line.front() == ' ' || line.front() == '\t') {
      if (key.empty())
        return bad("METADATA line " + std::to_string(line_no) + ": continuation line " +
                   util::quote(line) + " without a header before it");
      value += ' ';
      value += util::trim(line);
      continue;
    }
    CYLLM_TRY_VOID(flush());
    // Like Python's email parser (which pip reads METADATA with): a line that is not a
    // header ends the headers and starts the body.
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) break;
    auto k = line.substr(0, colon);
    if (!std::all_of(k.begin(), k.end(), [](char c) { return c > ' ' && c <= '~'; })) break;
    key = std::string(k);
    value = std::string(line.substr(colon + 1));
    key_line = line_no;
  }
  CYLLM_TRY_VOID(flush());
  if (!have_name || m.name.empty()) return bad("METADATA has no Name");
  if (!have_version || m.version.empty()) return bad("METADATA has no Version");
  return m;
}

Result<std::vector<RecordEntry>> parse_wheel_record(std::string_view text) {
  if (text.size() > kMaxRecordBytes)
    return bad("RECORD is " + std::to_string(text.size()) + " bytes; the limit is " +
               std::to_string(kMaxRecordBytes));
  std::vector<RecordEntry> out;
  std::size_t pos = 0, row = 0;
  while (pos < text.size()) {
    ++row;
    auto where = [&] { return "RECORD row " + std::to_string(row) + ": "; };
    auto fields = csv_row(text, pos);
    if (!fields) return bad(where() + "unterminated or misplaced quote");
    if (fields->size() == 1 && (*fields)[0].empty()) continue;  // blank line
    if (fields->size() != 3)
      return bad(where() + "expected 3 fields (path,hash,size), found " + std::to_string(fields->size()));
    RecordEntry e;
    e.path = std::move((*fields)[0]);
    if (e.path.empty()) return bad(where() + "empty path");
    const std::string& h = (*fields)[1];
    if (!h.empty()) {
      auto eq = h.find('=');
      if (eq == std::string::npos)
        return bad(where() + "hash " + util::quote(h) + " of " + util::quote(e.path) + " is not ALGORITHM=DIGEST");
      e.hash_algorithm = util::to_lower(std::string_view(h).substr(0, eq));
      std::size_t digest_bytes = e.hash_algorithm == "sha256"   ? 32
                                 : e.hash_algorithm == "sha384" ? 48
                                 : e.hash_algorithm == "sha512" ? 64
                                                                : 0;
      if (digest_bytes == 0)
        return bad(where() + "hash algorithm " + util::quote(e.hash_algorithm) + " of " + util::quote(e.path) +
                   " is not accepted (sha256, sha384 or sha512)");
      auto d = decode_b64url(std::string_view(h).substr(eq + 1));
      if (!d || d->size() != digest_bytes)
        return bad(where() + "digest " + util::quote(h) + " of " + util::quote(e.path) +
                   " is not urlsafe base64 of " + std::to_string(digest_bytes) + " bytes");
      e.digest = std::move(*d);
    }
    const std::string& s = (*fields)[2];
    if (!s.empty()) {
      bool digits = std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
      auto n = digits ? util::parse_u64(s) : std::nullopt;
      if (!n) return bad(where() + "size " + util::quote(s) + " of " + util::quote(e.path) + " is not a number");
      e.size_bytes = *n;
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace cyllm::wheelhouse
