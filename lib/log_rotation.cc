// log_rotation.cc — rotated log names, their order and the choice of the
// files to read after a saved position (see log_rotation.h). No I/O.
#include "mailgate/log_rotation.h"

#include <algorithm>
#include <array>

namespace mailgate {
namespace {

constexpr std::array<std::string_view, 6> kCompressed = {".gz", ".xz", ".bz2", ".zst", ".lz4", ".Z"};

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// 8 digits (YYYYMMDD), then digits and '-' only, not ending in '-'.
bool isStamp(std::string_view s) {
  if (s.size() < 8 || !allDigits(s.substr(0, 8)) || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
}

// Older first within one scheme.
bool olderByName(const RotatedName& a, const RotatedName& b) {
  if (a.scheme == RotationScheme::Numbered) return a.number > b.number;
  return a.stamp < b.stamp;
}

}  // namespace

std::optional<RotatedName> parseRotatedName(std::string_view base, std::string_view name) {
  if (base.empty() || name.size() <= base.size() + 1 || name.substr(0, base.size()) != base) return std::nullopt;
  RotatedName r;
  std::string_view rest = name.substr(base.size());
  for (std::string_view ext : kCompressed) {
    if (rest.size() > ext.size() && rest.substr(rest.size() - ext.size()) == ext) {
      rest.remove_suffix(ext.size());
      r.compressed = true;
      break;
    }
  }
  if (rest.size() < 2 || (rest[0] != '.' && rest[0] != '-')) return std::nullopt;
  std::string_view suffix = rest.substr(1);
  if (rest[0] == '.' && allDigits(suffix) && suffix.size() < 8) {
    r.scheme = RotationScheme::Numbered;
    r.number = std::stoull(std::string(suffix));
    return r;
  }
  if (!isStamp(suffix)) return std::nullopt;
  r.scheme = RotationScheme::Dated;
  r.stamp = std::string(suffix);
  return r;
}

std::vector<LogCandidate> orderCandidates(std::vector<LogCandidate> candidates) {
  std::vector<LogCandidate> rotated;
  std::optional<LogCandidate> live;
  for (auto& c : candidates) {
    if (!c.rotated) live = std::move(c);
    else if (!c.rotated->compressed) rotated.push_back(std::move(c));
  }
  bool mixed = std::any_of(rotated.begin(), rotated.end(),
                           [&](const LogCandidate& c) { return c.rotated->scheme != rotated.front().rotated->scheme; });
  std::stable_sort(rotated.begin(), rotated.end(), [&](const LogCandidate& a, const LogCandidate& b) {
    if (mixed) return a.mtime_ms < b.mtime_ms;
    return olderByName(*a.rotated, *b.rotated);
  });
  if (live) rotated.push_back(std::move(*live));
  return rotated;
}

bool isSavedFile(const LogPosition& saved, const LogCandidate& c) {
  if (c.size < saved.offset) return false;
  if (saved.fingerprint.empty()) return c.inode == saved.inode;
  return c.prefix_fingerprint && *c.prefix_fingerprint == saved.fingerprint;
}

ResumePlan planResume(const std::optional<LogPosition>& saved, const std::string& live_path,
                      const std::vector<LogCandidate>& candidates) {
  ResumePlan plan;
  plan.skipped_compressed = static_cast<size_t>(std::count_if(
      candidates.begin(), candidates.end(), [](const LogCandidate& c) { return c.rotated && c.rotated->compressed; }));
  std::vector<LogCandidate> files = orderCandidates(candidates);
  if (!saved) {
    plan.steps.push_back({live_path, 0, true});
    return plan;
  }
  size_t first = files.size();
  for (size_t i = files.size(); i-- > 0;) {
    if (isSavedFile(*saved, files[i])) {
      first = i;
      break;
    }
  }
  if (first < files.size()) {
    plan.from = ResumeFrom::SavedFile;
    for (size_t i = first; i < files.size(); ++i) {
      plan.steps.push_back({files[i].path, i == first ? saved->offset : 0, !files[i].rotated.has_value()});
    }
  } else {
    plan.from = ResumeFrom::NewerFiles;
    for (const auto& f : files) {
      if (f.rotated && saved->mtime_ms > 0 && f.mtime_ms >= saved->mtime_ms) plan.steps.push_back({f.path, 0, false});
    }
  }
  if (plan.steps.empty() || !plan.steps.back().live) plan.steps.push_back({live_path, 0, true});
  return plan;
}

}  // namespace mailgate
