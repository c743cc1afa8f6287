// A located document tree: what the YAML and JSON readers turn registry text into, so that
// the registry decoder sees one shape, with a 1-based line on every node and key.
//
// Design goals: exact lines for both syntaxes (yaml-cpp's Mark; for JSON a counting
// iterator under nlohmann's SAX parser), duplicate keys caught while reading, bounded depth
// and size so hostile input cannot blow the stack or memory. Non-goals: round-tripping,
// comments, column numbers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cyllm::registry::detail {

inline constexpr int kMaxDepth = 64;
inline constexpr std::size_t kMaxNodes = 1u << 20;

struct Node {
  enum class Kind { Null, Bool, Number, String, Seq, Map };
  Kind kind = Kind::Null;
  bool plain = false;  // YAML plain (unquoted) scalar: also acceptable where text is wanted
  std::string text;    // scalar text as written (bools: "true"/"false")
  int line = 0;        // 1-based
  std::vector<Node> items;                      // Seq
  struct Entry;                                 // {first: key, second: value}
  std::vector<Entry> entries;                   // Map, in document order
  std::vector<int> key_lines;                   // Map: line of each key

  bool is_scalar() const { return kind != Kind::Seq && kind != Kind::Map && kind != Kind::Null; }
  const Node* find(std::string_view key) const;
};

// "a string", "a list", "a mapping", ...
// A key/value pair of a map. Not std::pair: a pair of an incomplete Node cannot be a
// member of Node itself (libc++ and clang reject it; vector of an incomplete class is fine).
struct Node::Entry {
  Entry(std::string key, Node value) : first(std::move(key)), second(std::move(value)) {}
  std::string first;
  Node second;
};

std::string_view kind_name(Node::Kind kind);

struct SyntaxError {
  int line = 0;
  std::string message;
};

// Parse one document. Never throws. On failure returns the first syntax error.
struct ParseResult {
  std::optional<Node> root;
  std::vector<SyntaxError> errors;  // syntax errors and duplicate keys
};
ParseResult parse_yaml(std::string_view text);
ParseResult parse_json(std::string_view text);

}  // namespace cyllm::registry::detail
