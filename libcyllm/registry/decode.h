// Turns located document trees (node.h) into a Registry: per-file decoding with type and
// unknown-key checks, merging across files, then the cross-file checks (references,
// `extends` cycles, version syntax, duplicates). Every problem becomes a Diagnostic; none
// stops the others from being found.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cyllm/registry.h"
#include "registry/node.h"

namespace cyllm::registry::detail {

class RegistryBuilder {
 public:
  // Decodes one file's tree and merges it into the registry under construction.
  void add_file(const std::string& file, const Node& root);
  // Records a file that could not be parsed (d is its syntax error); the cross-file
  // checks are then skipped.
  void add_unreadable_file(Diagnostic d);
  // Runs the cross-file checks (skipped when a file could not be read or has an
  // unsupported schema_version: its absence would only cause noise) and returns the
  // outcome, diagnostics sorted by file (in add order) and line.
  LoadOutcome finish();

 private:
  friend class FileDecoder;
  void error(Errc code, const SourceLocation& loc, std::string key_path, std::string message);
  // Line of a scalar read from `file` at `key_path`, or `fallback`.
  int line_of(const std::string& file, const std::string& key_path, int fallback) const;
  void validate();
  void resolve_profiles();

  Registry reg_;
  std::vector<Diagnostic> diags_;
  bool fatal_ = false;  // a file was skipped entirely
  std::map<std::pair<std::string, std::string>, int> lines_;  // (file, key path) -> line
  std::vector<std::string> preset_paths_;                     // key path of each preset
};

}  // namespace cyllm::registry::detail
