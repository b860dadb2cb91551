#pragma once
// ComponentHealth: one part's state in a health report (ScoringEngine::health,
// and models with parts that come and go, such as a RemoteModel's endpoints).

#include <string>

namespace keel {

struct ComponentHealth {
  std::string name;    // "model:primary", "stage:primary", "cache", "remote:replicas", ...
  bool ok = true;
  std::string state;   // "loaded", "closed", "open", "half_open", "up", "degraded", ...
  std::string detail;  // versions, counts, the last error
};

}  // namespace keel
