#include "registry/node.h"

#include <yaml-cpp/yaml.h>

#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

namespace cyllm::registry::detail {

const Node* Node::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

std::string_view kind_name(Node::Kind kind) {
  switch (kind) {
    case Node::Kind::Null: return "null";
    case Node::Kind::Bool: return "a boolean";
    case Node::Kind::Number: return "a number";
    case Node::Kind::String: return "a string";
    case Node::Kind::Seq: return "a list";
    case Node::Kind::Map: return "a mapping";
  }
  return "?";
}

namespace {

// ---- YAML ----------------------------------------------------------------------------

bool is_yaml_null(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}
bool is_yaml_bool(const std::string& s) {
  return s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" ||
         s == "FALSE";
}
bool is_yaml_number(const std::string& s) {
  // YAML 1.2 core schema ints and floats (the subset that matters here).
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  bool digits = false, dot = false, exp = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot && !exp) {
      dot = true;
    } else if ((c == 'e' || c == 'E') && digits && !exp) {
      exp = true;
      digits = false;
      if (i + 1 < s.size() && (s[i + 1] == '+' || s[i + 1] == '-')) ++i;
    } else {
      return false;
    }
  }
  return digits;
}

class YamlConverter {
 public:
  explicit YamlConverter(std::vector<SyntaxError>& errors) : errors_(errors) {}

  std::optional<Node> convert(const YAML::Node& in, int depth, int fallback_line) {
    if (++n_nodes_ > kMaxNodes) {
      if (!too_big_) errors_.push_back({fallback_line, "document too large (aliases?)"});
      too_big_ = true;
      return std::nullopt;
    }
    if (depth > kMaxDepth) {
      errors_.push_back({fallback_line, "nesting deeper than " + std::to_string(kMaxDepth)});
      return std::nullopt;
    }
    Node out;
    int line = in.Mark().line >= 0 ? in.Mark().line + 1 : fallback_line;
    out.line = line;
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = Node::Kind::Null;
        return out;
      case YAML::NodeType::Scalar: {
        out.text = in.Scalar();
        bool quoted = in.Tag() == "!";
        out.plain = !quoted;
        if (quoted) out.kind = Node::Kind::String;
        else if (is_yaml_null(out.text)) out.kind = Node::Kind::Null;
        else if (is_yaml_bool(out.text)) {
          out.kind = Node::Kind::Bool;
          out.text = (out.text[0] == 't' || out.text[0] == 'T') ? "true" : "false";
        } else if (is_yaml_number(out.text)) out.kind = Node::Kind::Number;
        else out.kind = Node::Kind::String;
        return out;
      }
      case YAML::NodeType::Sequence:
        out.kind = Node::Kind::Seq;
        for (const auto& item : in) {
          auto c = convert(item, depth + 1, line);
          if (!c) return std::nullopt;
          out.items.push_back(std::move(*c));
        }
        return out;
      case YAML::NodeType::Map: {
        out.kind = Node::Kind::Map;
        std::set<std::string> seen;
        for (const auto& kv : in) {
          int key_line = kv.first.Mark().line >= 0 ? kv.first.Mark().line + 1 : line;
          if (!kv.first.IsScalar()) {
            errors_.push_back({key_line, "mapping keys must be plain strings"});
            return std::nullopt;
          }
          std::string key = kv.first.Scalar();
          if (!seen.insert(key).second) {
            errors_.push_back({key_line, "duplicate key \"" + key + "\""});
            continue;
          }
          auto v = convert(kv.second, depth + 1, key_line);
          if (!v) return std::nullopt;
          if (v->kind == Node::Kind::Null) v->line = key_line;
          out.entries.emplace_back(std::move(key), std::move(*v));
          out.key_lines.push_back(key_line);
        }
        return out;
      }
    }
    return out;
  }

 private:
  std::vector<SyntaxError>& errors_;
  std::size_t n_nodes_ = 0;
  bool too_big_ = false;
};

// ---- JSON ----------------------------------------------------------------------------

// Counts lines as nlohmann's lexer consumes characters. `token_line` is the line of the
// last non-blank character read: when a SAX event fires, that is the token just scanned
// (the lexer's one-character lookahead after a number is either blank or on the same line).
struct LineTracker {
  int line = 1;
  int token_line = 1;
};

class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* p, LineTracker* t) : p_(p), t_(t) {}
  reference operator*() const { return *p_; }
  TrackingIterator& operator++() {
    char c = *p_;
    if (c == '\n') ++t_->line;
    else if (c != ' ' && c != '\t' && c != '\r') t_->token_line = t_->line;
    ++p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& o) const { return p_ == o.p_; }
  bool operator!=(const TrackingIterator& o) const { return p_ != o.p_; }

 private:
  const char* p_;
  LineTracker* t_;
};

class JsonBuilder {
 public:
  using json = nlohmann::json;
  JsonBuilder(std::string_view text, LineTracker& t, std::vector<SyntaxError>& errors)
      : text_(text), t_(t), errors_(errors) {}

  bool null() { return add(scalar(Node::Kind::Null, "null")); }
  bool boolean(bool v) { return add(scalar(Node::Kind::Bool, v ? "true" : "false")); }
  bool number_integer(json::number_integer_t v) {
    return add(scalar(Node::Kind::Number, std::to_string(v)));
  }
  bool number_unsigned(json::number_unsigned_t v) {
    return add(scalar(Node::Kind::Number, std::to_string(v)));
  }
  bool number_float(json::number_float_t, const json::string_t& s) {
    return add(scalar(Node::Kind::Number, s));
  }
  bool string(json::string_t& s) { return add(scalar(Node::Kind::String, s)); }
  bool binary(json::binary_t&) { return add(scalar(Node::Kind::Null, "")); }
  bool start_object(std::size_t) { return open(Node::Kind::Map); }
  bool start_array(std::size_t) { return open(Node::Kind::Seq); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    Level& top = stack_.back();
    top.pending_key = k;
    top.pending_key_line = t_.token_line;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) {
    std::size_t end = std::min(position > 0 ? position - 1 : 0, text_.size());
    int line = 1;
    for (std::size_t i = 0; i < end; ++i)
      if (text_[i] == '\n') ++line;
    std::string msg = ex.what();
    if (auto c = msg.find("column "); c != std::string::npos) {
      if (auto colon = msg.find(": ", c); colon != std::string::npos) msg = msg.substr(colon + 2);
    } else if (auto b = msg.find("] "); b != std::string::npos) {
      msg = msg.substr(b + 2);
    }
    errors_.push_back({line, msg});
    return false;
  }

  std::optional<Node> take() { return std::move(root_); }

 private:
  struct Level {
    Node node;
    std::set<std::string> keys;
    std::string pending_key;
    int pending_key_line = 0;
  };

  Node scalar(Node::Kind kind, std::string text) {
    Node n;
    n.kind = kind;
    n.text = std::move(text);
    n.line = t_.token_line;
    return n;
  }
  bool open(Node::Kind kind) {
    if (stack_.size() >= static_cast<std::size_t>(kMaxDepth)) {
      errors_.push_back({t_.token_line, "nesting deeper than " + std::to_string(kMaxDepth)});
      return false;
    }
    if (++n_nodes_ > kMaxNodes) {
      errors_.push_back({t_.token_line, "document too large"});
      return false;
    }
    Level l;
    l.node.kind = kind;
    l.node.line = t_.token_line;
    stack_.push_back(std::move(l));
    return true;
  }
  bool close() {
    Node done = std::move(stack_.back().node);
    stack_.pop_back();
    return add(std::move(done));
  }
  bool add(Node n) {
    if (++n_nodes_ > kMaxNodes) {
      errors_.push_back({t_.token_line, "document too large"});
      return false;
    }
    if (stack_.empty()) {
      root_ = std::move(n);
      return true;
    }
    Level& top = stack_.back();
    if (top.node.kind == Node::Kind::Seq) {
      top.node.items.push_back(std::move(n));
    } else if (!top.keys.insert(top.pending_key).second) {
      errors_.push_back({top.pending_key_line, "duplicate key \"" + top.pending_key + "\""});
    } else {
      top.node.entries.emplace_back(top.pending_key, std::move(n));
      top.node.key_lines.push_back(top.pending_key_line);
    }
    return true;
  }

  std::string_view text_;
  LineTracker& t_;
  std::vector<SyntaxError>& errors_;
  std::vector<Level> stack_;
  std::optional<Node> root_;
  std::size_t n_nodes_ = 0;
};

}  // namespace

// Line of a second document's "---" marker, or 0. A registry file is one document; a
// second one would be silently ignored by YAML::Load.
static int second_document_line(std::string_view text) {
  bool content = false;
  int line = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view l = text.substr(pos, nl - pos);
    ++line;
    bool marker = l.substr(0, 3) == "---" && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    if (marker && content) return line;
    std::size_t first = l.find_first_not_of(" \t\r");
    if (marker || (first != std::string_view::npos && l[first] != '#' && l[first] != '%')) content = true;
    pos = nl + 1;
  }
  return 0;
}

ParseResult parse_yaml(std::string_view text) {
  ParseResult r;
  // YAML::Load, not LoadAll: yaml-cpp 0.7's LoadAll can loop forever on malformed input.
  if (int line = second_document_line(text)) {
    r.errors.push_back({line, "more than one YAML document in the file"});
    return r;
  }
  try {
    YAML::Node doc = YAML::Load(std::string(text));
    YamlConverter conv(r.errors);
    r.root = conv.convert(doc, 0, 1);
    if (!r.errors.empty()) r.root.reset();
  } catch (const YAML::Exception& e) {
    r.root.reset();
    r.errors.push_back({e.mark.line >= 0 ? e.mark.line + 1 : 1, e.msg});
  } catch (const std::exception& e) {
    r.root.reset();
    r.errors.push_back({1, e.what()});
  }
  return r;
}

ParseResult parse_json(std::string_view text) {
  ParseResult r;
  LineTracker tracker;
  try {
    JsonBuilder builder(text, tracker, r.errors);
    TrackingIterator first(text.data(), &tracker);
    TrackingIterator last(text.data() + text.size(), &tracker);
    bool ok = nlohmann::json::sax_parse(first, last, &builder);
    if (ok) r.root = builder.take();
    else if (r.errors.empty()) r.errors.push_back({tracker.token_line, "invalid JSON"});
  } catch (const std::exception& e) {
    r.root.reset();
    r.errors.push_back({tracker.token_line, e.what()});
  }
  return r;
}

}  // namespace cyllm::registry::detail
