#include "engine/stop_strings.h"

#include <algorithm>

namespace cyllm::engine {

StopFilter::StopFilter(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

StopFilter::Out StopFilter::push(std::string_view piece) {
  Out out;
  if (stopped_) return out;
  held_.append(piece);
  // The earliest complete stop string wins.
  std::size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    out.text = held_.substr(0, cut);
    out.stopped = stopped_ = true;
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  std::size_t keep = 0;
  for (const auto& s : stops_) {
    const std::size_t max = std::min(s.size() - 1, held_.size());
    for (std::size_t n = max; n > keep; --n)
      if (std::string_view(held_).substr(held_.size() - n) == std::string_view(s).substr(0, n)) {
        keep = n;
        break;
      }
  }
  out.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopFilter::flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

}  // namespace cyllm::engine
