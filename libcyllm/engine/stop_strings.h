// Stop strings: text that ends a generation and is never shown, even in part.
//
// Generated text arrives in pieces (one per token, already valid UTF-8). A stop string may
// span pieces ("</" then "end>"), so text that could still become the start of a stop
// string is held back until the next piece decides: either the stop string completes (the
// held text and everything after it is dropped) or it cannot (the text is released).
// Stop strings must be valid UTF-8; then every release ends on a character boundary.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cyllm::engine {

class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops);

  struct Out {
    std::string text;     // safe to emit now
    bool stopped = false; // a stop string matched; `text` is what precedes it
  };
  // Adds a piece. After a stop, further pushes return nothing.
  Out push(std::string_view piece);
  // End of generation: releases what was held back (it was not a stop string).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace cyllm::engine
