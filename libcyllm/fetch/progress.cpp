// Progress renderers: bars redrawn in place on a terminal (one line per active download
// plus a total with rate and ETA), or one JSON object per event for machines.
#include <cinttypes>
#include <cstdio>
#include <map>

#include "cyllm/fetch.h"

namespace cyllm::fetch {
namespace {

std::string human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char b[32];
  std::snprintf(b, sizeof b, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return b;
}

struct Item {
  std::string name;
  std::uint64_t done = 0;
  std::optional<std::uint64_t> total;
  bool active = true;
};

class TtyProgress final : public Progress {
 public:
  TtyProgress(std::FILE* out, const Clock& clock) : out_(out), clock_(clock), t0_(clock.now()) {}
  ~TtyProgress() override { draw(true); }
  void started(std::size_t id, const std::string& name, std::optional<std::uint64_t> total) override {
    items_[id] = Item{name, 0, total, true};
  }
  void advanced(std::size_t id, std::uint64_t done, std::optional<std::uint64_t> total) override {
    auto& it = items_[id];
    bytes_ += done > it.done ? done - it.done : 0;
    it.done = done;
    if (total) it.total = total;
  }
  void finished(std::size_t id, bool, bool) override {
    auto it = items_.find(id);
    if (it != items_.end()) it->second.active = false;
    ++n_done_;
  }
  void tick() override {
    auto now = clock_.now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    draw(false);
  }

 private:
  void draw(bool final) {
    std::string s;
    for (int i = 0; i < lines_; ++i) s += "\x1b[1A\x1b[2K";  // up and clear what we drew last time
    s += "\r";
    int lines = 0;
    std::uint64_t all_total = 0;
    bool all_known = true;
    for (auto& [id, it] : items_) {
      if (it.total) all_total += *it.total;
      else all_known = false;
      if (!it.active || final) continue;
      char line[256];
      if (it.total && *it.total > 0) {
        int w = 30, fill = static_cast<int>(w * static_cast<double>(it.done) / static_cast<double>(*it.total));
        fill = std::min(std::max(fill, 0), w);
        std::snprintf(line, sizeof line, "%-32.32s [%s%s] %s / %s\n", it.name.c_str(), std::string(fill, '#').c_str(),
                      std::string(w - fill, ' ').c_str(), human(it.done).c_str(), human(*it.total).c_str());
      } else {
        std::snprintf(line, sizeof line, "%-32.32s %s\n", it.name.c_str(), human(it.done).c_str());
      }
      s += line;
      ++lines;
    }
    double secs = std::chrono::duration<double>(clock_.now() - t0_).count();
    double rate = secs > 0 ? static_cast<double>(bytes_) / secs : 0;
    std::uint64_t done_all = 0;
    for (auto& [id, it] : items_) done_all += it.done;
    std::string eta = "?";
    if (all_known && rate > 0 && all_total >= done_all) {
      char b[32];
      std::snprintf(b, sizeof b, "%.0fs", static_cast<double>(all_total - done_all) / rate);
      eta = b;
    }
    char tot[256];
    std::snprintf(tot, sizeof tot, "total: %zu/%zu files, %s, %s/s, ETA %s\n", n_done_, items_.size(),
                  human(static_cast<double>(bytes_)).c_str(), human(rate).c_str(), final ? "0s" : eta.c_str());
    s += tot;
    lines_ = lines + 1;
    std::fwrite(s.data(), 1, s.size(), out_);
    std::fflush(out_);
  }

  std::FILE* out_;
  const Clock& clock_;
  std::chrono::steady_clock::time_point t0_, last_{};
  std::map<std::size_t, Item> items_;
  std::uint64_t bytes_ = 0;
  std::size_t n_done_ = 0;
  int lines_ = 0;
};

class JsonProgress final : public Progress {
 public:
  JsonProgress(std::FILE* out, const Clock& clock) : out_(out), clock_(clock) {}
  void started(std::size_t id, const std::string& name, std::optional<std::uint64_t> total) override {
    names_[id] = name;
    emit({{"event", "start"}, {"id", id}, {"name", name}, {"total_bytes", total ? nlohmann::json(*total) : nullptr}});
  }
  void advanced(std::size_t id, std::uint64_t done, std::optional<std::uint64_t> total) override {
    auto now = clock_.now();
    auto& last = last_[id];
    if (now - last < std::chrono::milliseconds(500)) return;  // at most two events a second per file
    last = now;
    emit({{"event", "progress"}, {"id", id}, {"name", names_[id]}, {"done_bytes", done},
          {"total_bytes", total ? nlohmann::json(*total) : nullptr}});
  }
  void finished(std::size_t id, bool ok, bool hit) override {
    emit({{"event", "done"}, {"id", id}, {"name", names_[id]}, {"ok", ok}, {"cache_hit", hit}});
  }

 private:
  void emit(const nlohmann::ordered_json& j) {
    std::string s = j.dump() + "\n";
    std::fwrite(s.data(), 1, s.size(), out_);
    std::fflush(out_);
  }
  std::FILE* out_;
  const Clock& clock_;
  std::map<std::size_t, std::string> names_;
  std::map<std::size_t, std::chrono::steady_clock::time_point> last_;
};

}  // namespace

std::unique_ptr<Progress> make_tty_progress(std::FILE* out, const Clock& clock) {
  return std::make_unique<TtyProgress>(out, clock);
}
std::unique_ptr<Progress> make_json_progress(std::FILE* out, const Clock& clock) {
  return std::make_unique<JsonProgress>(out, clock);
}

nlohmann::ordered_json manifest_json(const DownloadReport& report, const std::string& dest_dir,
                                     const std::string& cache_dir) {
  // Built member by member and moved into place: with initializer lists every artifact's
  // object was copied twice, and a 200-file manifest cost more allocations than the
  // downloads it describes.
  using ojson = nlohmann::ordered_json;
  auto s_or_null = [](const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); };
  ojson arts = ojson::array();
  arts.get_ref<ojson::array_t&>().reserve(report.artifacts.size());
  std::size_t failed = 0;
  for (const auto& r : report.artifacts) {
    ojson a = ojson::object();
    a.get_ref<ojson::object_t&>().reserve(11);
    a["source"] = r.artifact.source;
    a["url"] = s_or_null(r.final_url.empty() ? r.artifact.url : r.final_url);
    a["filename"] = r.artifact.filename;
    a["path"] = s_or_null(r.path);
    a["sha256"] = s_or_null(r.sha256);
    a["size_bytes"] = r.error ? ojson(nullptr) : ojson(r.size_bytes);
    a["status"] = r.error ? "failed" : r.cache_hit ? "cache_hit" : "downloaded";
    a["etag"] = s_or_null(r.etag);
    a["environment"] = s_or_null(r.artifact.environment);
    if (r.artifact.hugging_face) {
      ojson hf = ojson::object();
      hf["repo"] = r.artifact.hf_repo;
      hf["revision"] = r.artifact.hf_revision;
      hf["file"] = r.artifact.hf_file;
      hf["commit"] = s_or_null(r.hf_commit);
      a["hf"] = std::move(hf);
    }
    if (r.error) {
      ++failed;
      ojson err = ojson::object();
      err["code"] = std::string(r.error->id());
      err["message"] = r.error->to_string();
      a["error"] = std::move(err);
    }
    arts.push_back(std::move(a));
  }
  ojson summary = ojson::object();
  summary["total"] = report.artifacts.size();
  summary["failed"] = failed;
  summary["requests"] = report.requests;
  summary["downloaded_bytes"] = report.downloaded_bytes;
  summary["cancelled"] = report.cancelled;
  ojson doc = ojson::object();
  doc["schema"] = kFetchSchema;
  doc["dest"] = s_or_null(dest_dir);
  doc["cache_dir"] = cache_dir;
  doc["artifacts"] = std::move(arts);
  doc["summary"] = std::move(summary);
  return doc;
}

}  // namespace cyllm::fetch
