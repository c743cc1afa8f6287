// PEP 508 environment markers: a recursive-descent parser and an evaluator against an
// explicit MarkerEnvironment (the target host).
//
//   marker  = and ('or' and)*
//   and     = atom ('and' atom)*
//   atom    = '(' marker ')' | value op value
//   value   = variable | 'single quoted' | "double quoted"
//   op      = === | ~= | == | != | <= | >= | < | > | in | not in
//
// Variables are the PEP 508 names plus the historical aliases pip still accepts
// (os.name, sys.platform, platform.version, platform.machine,
// platform.python_implementation, python_implementation), stored by canonical name.
#include <algorithm>
#include <string>
#include <vector>

#include "cyllm/packaging.h"
#include "resolve/packaging_internal.h"
#include "util/strings.h"

namespace cyllm::packaging {
namespace detail {

struct MarkerValue {
  bool is_variable = false;
  std::string text;  // canonical variable name, or the string's contents
};

struct MarkerNode {
  enum class Kind { Compare, And, Or, Group } kind = Kind::Compare;
  MarkerValue lhs, rhs;                               // Compare
  std::string op;                                     // Compare: "==", "not in", ...
  std::vector<std::shared_ptr<const MarkerNode>> children;  // And/Or: >= 2; Group: 1
};

}  // namespace detail

struct MarkerAccess {
  static Marker make(std::shared_ptr<const detail::MarkerNode> root) {
    Marker m;
    m.root_ = std::move(root);
    return m;
  }
  static const detail::MarkerNode& root(const Marker& m) { return *m.root_; }
};

namespace {

using detail::MarkerNode;
using detail::MarkerValue;
using NodePtr = std::shared_ptr<const MarkerNode>;

struct VariableName {
  std::string_view spelling;
  std::string_view canonical;
};
constexpr VariableName kVariables[] = {
    {"python_version", "python_version"},
    {"python_full_version", "python_full_version"},
    {"os_name", "os_name"},
    {"sys_platform", "sys_platform"},
    {"platform_release", "platform_release"},
    {"platform_system", "platform_system"},
    {"platform_version", "platform_version"},
    {"platform_machine", "platform_machine"},
    {"platform_python_implementation", "platform_python_implementation"},
    {"implementation_name", "implementation_name"},
    {"implementation_version", "implementation_version"},
    {"extra", "extra"},
    {"os.name", "os_name"},
    {"sys.platform", "sys_platform"},
    {"platform.version", "platform_version"},
    {"platform.machine", "platform_machine"},
    {"platform.python_implementation", "platform_python_implementation"},
    {"python_implementation", "platform_python_implementation"},
};

bool is_word_char(char c) { return detail::is_alnum(c) || c == '_' || c == '.'; }

class MarkerParser {
 public:
  MarkerParser(std::string_view text, std::string_view whole, std::size_t offset)
      : s_(text), whole_(whole), offset_(offset) {}

  Result<Marker> run() {
    if (whole_.size() > kMaxRequirementLength)
      return Error(Errc::BadMarker, util::quote(whole_) + " is not a valid marker: longer than " +
                                        std::to_string(kMaxRequirementLength) + " characters");
    skip_ws();
    if (at_end()) return fail("expected a marker such as python_version >= \"3.9\", found nothing");
    NodePtr root = CYLLM_TRY(parse_or(0));
    skip_ws();
    if (!at_end()) return fail("expected \"and\", \"or\" or the end, found " + rest_quoted());
    return MarkerAccess::make(std::move(root));
  }

 private:
  Error fail(std::string what) const {
    return Error(Errc::BadMarker, util::quote(whole_) + " is not a valid marker: " +
                                      std::move(what) + " at column " +
                                      std::to_string(offset_ + pos_ + 1));
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek(std::size_t k = 0) const { return pos_ + k < s_.size() ? s_[pos_ + k] : '\0'; }
  void skip_ws() {
    while (!at_end() && detail::is_space(s_[pos_])) ++pos_;
  }
  std::string rest_quoted() const { return util::quote(s_.substr(pos_), 30); }
  // The word at pos_ (letters, digits, '_', '.'), not consumed.
  std::string_view word() const {
    std::size_t e = pos_;
    while (e < s_.size() && is_word_char(s_[e])) ++e;
    return s_.substr(pos_, e - pos_);
  }
  bool take_keyword(std::string_view kw) {
    skip_ws();
    if (word() != kw) return false;
    pos_ += kw.size();
    return true;
  }

  Result<NodePtr> parse_or(int depth) {
    auto first = CYLLM_TRY(parse_and(depth));
    std::vector<NodePtr> items{first};
    for (;;) {
      std::size_t save = pos_;
      if (!take_keyword("or")) {
        pos_ = save;
        break;
      }
      items.push_back(CYLLM_TRY(parse_and(depth)));
    }
    if (items.size() == 1) return items[0];
    auto n = std::make_shared<MarkerNode>();
    n->kind = MarkerNode::Kind::Or;
    n->children = std::move(items);
    return NodePtr(n);
  }

  Result<NodePtr> parse_and(int depth) {
    auto first = CYLLM_TRY(parse_atom(depth));
    std::vector<NodePtr> items{first};
    for (;;) {
      std::size_t save = pos_;
      if (!take_keyword("and")) {
        pos_ = save;
        break;
      }
      items.push_back(CYLLM_TRY(parse_atom(depth)));
    }
    if (items.size() == 1) return items[0];
    auto n = std::make_shared<MarkerNode>();
    n->kind = MarkerNode::Kind::And;
    n->children = std::move(items);
    return NodePtr(n);
  }

  Result<NodePtr> parse_atom(int depth) {
    skip_ws();
    if (peek() == '(') {
      if (depth >= kMaxMarkerDepth)
        return fail("parentheses nested deeper than " + std::to_string(kMaxMarkerDepth));
      ++pos_;
      NodePtr inner = CYLLM_TRY(parse_or(depth + 1));
      skip_ws();
      if (peek() != ')') return fail("expected \")\" or \"and\"/\"or\", found " + rest_quoted());
      ++pos_;
      auto n = std::make_shared<MarkerNode>();
      n->kind = MarkerNode::Kind::Group;
      n->children.push_back(std::move(inner));
      return NodePtr(n);
    }
    auto n = std::make_shared<MarkerNode>();
    n->lhs = CYLLM_TRY(parse_value());
    n->op = CYLLM_TRY(parse_op());
    n->rhs = CYLLM_TRY(parse_value());
    return NodePtr(n);
  }

  Result<MarkerValue> parse_value() {
    skip_ws();
    char q = peek();
    if (q == '"' || q == '\'') {
      std::size_t close = s_.find(q, pos_ + 1);
      if (close == std::string_view::npos) return fail("unterminated string");
      MarkerValue v{false, std::string(s_.substr(pos_ + 1, close - pos_ - 1))};
      pos_ = close + 1;
      return v;
    }
    std::string_view w = word();
    for (const VariableName& var : kVariables) {
      if (w == var.spelling) {
        pos_ += w.size();
        return MarkerValue{true, std::string(var.canonical)};
      }
    }
    if (at_end()) return fail("expected a marker variable or a quoted string, found the end");
    if (!w.empty())
      return fail("unknown marker variable " + util::quote(w, 40) +
                  " (expected python_version, python_full_version, os_name, sys_platform, "
                  "platform_release, platform_system, platform_version, platform_machine, "
                  "platform_python_implementation, implementation_name, "
                  "implementation_version, extra or a quoted string)");
    return fail("expected a marker variable or a quoted string, found " + rest_quoted());
  }

  Result<std::string> parse_op() {
    skip_ws();
    static constexpr std::string_view kOps[] = {"===", "~=", "==", "!=", "<=", ">=", "<", ">"};
    for (std::string_view op : kOps) {
      if (s_.substr(pos_, op.size()) == op) {
        pos_ += op.size();
        return std::string(op);
      }
    }
    std::string_view w = word();
    if (w == "in") {
      pos_ += 2;
      return std::string("in");
    }
    if (w == "not") {
      pos_ += 3;
      std::size_t before = pos_;
      skip_ws();
      if (pos_ > before && word() == "in") {
        pos_ += 2;
        return std::string("not in");
      }
      return fail("expected \"in\" after \"not\"");
    }
    return fail("expected a comparison (==, !=, <=, >=, <, >, ~=, ===, in, not in), found " +
                rest_quoted());
  }

  std::string_view s_;
  std::string_view whole_;
  std::size_t offset_;
  std::size_t pos_ = 0;
};

// Python's string comparison on bytes (UTF-8 order equals code point order).
Result<bool> compare_strings(const std::string& l, const std::string& op, const std::string& r) {
  if (op == "==") return l == r;
  if (op == "!=") return l != r;
  if (op == "<") return l < r;
  if (op == "<=") return l <= r;
  if (op == ">") return l > r;
  if (op == ">=") return l >= r;
  return Error(Errc::BadMarker, "cannot compare " + util::quote(l) + " " + op + " " +
                                    util::quote(r) + ": \"" + op +
                                    "\" needs PEP 440 versions on both sides");
}

Result<bool> eval_compare(const MarkerNode& n, const MarkerEnvironment& env) {
  auto value = [&](const MarkerValue& v) {
    if (!v.is_variable) return v.text;
    auto got = env.get(v.text);
    return got ? std::string(*got) : std::string();
  };
  std::string l = value(n.lhs);
  std::string r = value(n.rhs);
  if ((n.lhs.is_variable && n.lhs.text == "extra") || (n.rhs.is_variable && n.rhs.text == "extra")) {
    l = normalize_name(l);
    r = normalize_name(r);
  }
  if (n.op == "in") return r.find(l) != std::string::npos;
  if (n.op == "not in") return r.find(l) == std::string::npos;
  if (n.op == "===") {
    std::string a = l, b = r;
    for (char& c : a) c = detail::lower(c);
    for (char& c : b) c = detail::lower(c);
    return a == b;
  }
  auto spec = parse_specifier(n.op + r);
  if (spec.ok()) {
    auto v = parse_version(l);
    if (v.ok()) return spec->contains(*v, true);
  }
  return compare_strings(l, n.op, r);
}

Result<bool> eval(const MarkerNode& n, const MarkerEnvironment& env) {
  switch (n.kind) {
    case MarkerNode::Kind::Compare: return eval_compare(n, env);
    case MarkerNode::Kind::Group: return eval(*n.children[0], env);
    case MarkerNode::Kind::And:
    case MarkerNode::Kind::Or: {
      // Every operand is evaluated (no short circuit) so errors do not depend on order.
      bool is_and = n.kind == MarkerNode::Kind::And;
      bool acc = is_and;
      for (const NodePtr& c : n.children) {
        bool b = CYLLM_TRY(eval(*c, env));
        acc = is_and ? (acc && b) : (acc || b);
      }
      return acc;
    }
  }
  return false;
}

std::string format_value(const MarkerValue& v) {
  if (v.is_variable) return v.text;
  char q = v.text.find('"') == std::string::npos ? '"' : '\'';
  return q + v.text + q;
}

std::string format(const MarkerNode& n) {
  switch (n.kind) {
    case MarkerNode::Kind::Compare:
      return format_value(n.lhs) + " " + n.op + " " + format_value(n.rhs);
    case MarkerNode::Kind::Group: return "(" + format(*n.children[0]) + ")";
    case MarkerNode::Kind::And:
    case MarkerNode::Kind::Or: {
      std::string sep = n.kind == MarkerNode::Kind::And ? " and " : " or ";
      std::string out;
      for (std::size_t i = 0; i < n.children.size(); ++i) {
        if (i) out += sep;
        out += format(*n.children[i]);
      }
      return out;
    }
  }
  return {};
}

}  // namespace

std::optional<std::string_view> MarkerEnvironment::get(std::string_view name) const {
  if (name == "python_version") return python_version;
  if (name == "python_full_version") return python_full_version;
  if (name == "os_name") return os_name;
  if (name == "sys_platform") return sys_platform;
  if (name == "platform_release") return platform_release;
  if (name == "platform_system") return platform_system;
  if (name == "platform_version") return platform_version;
  if (name == "platform_machine") return platform_machine;
  if (name == "platform_python_implementation") return platform_python_implementation;
  if (name == "implementation_name") return implementation_name;
  if (name == "implementation_version") return implementation_version;
  if (name == "extra") return extra;
  return std::nullopt;
}

Result<Marker> detail::parse_marker_in(std::string_view text, std::string_view whole,
                                       std::size_t offset) {
  return MarkerParser(text, whole, offset).run();
}

Result<Marker> parse_marker(std::string_view text) {
  return detail::parse_marker_in(text, text, 0);
}

Result<bool> Marker::evaluate(const MarkerEnvironment& env) const {
  if (!root_) return true;  // a default-constructed Marker always holds
  auto r = eval(*root_, env);
  if (!r.ok()) return std::move(r).error().with_context("evaluating marker " + util::quote(to_string()));
  return r;
}

std::string Marker::to_string() const {
  return root_ ? format(*root_) : std::string();
}

}  // namespace cyllm::packaging
