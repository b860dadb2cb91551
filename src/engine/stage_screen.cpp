// screen: the anomaly detector scores each row against the training
// profile; its policy flags the row, rejects it, or routes it past the
// primary (the chain then starts that row at stage 1). Without a detector
// the screen is a null object.

#include "engine/request_state.hpp"

#include <fmt/format.h>

namespace keel::detail {

namespace {

class NoScreen final : public Screen {
 public:
  void run(ScoringEngine::Impl&, RequestState&) const noexcept override {}
};

class DetectorScreen final : public Screen {
 public:
  explicit DetectorScreen(std::shared_ptr<const AnomalyDetector> d) : d_(std::move(d)) {}

  void run(ScoringEngine::Impl& m, RequestState& st) const noexcept override {
    Scratch& s = st.s;
    BatchResult& out = st.out;
    d_->score(st.rows, st.n, s.anomaly);
    s.next.clear();
    for (std::uint32_t r : s.pending) {
      if (!s.anomaly.anomalous(r)) {
        s.next.push_back(r);
        continue;
      }
      m.anomalies->inc();
      out.anomaly[r] = 1;
      out.anomaly_score[r] = s.anomaly.score(r);
      std::string& reason = out.anomaly_reason[r];
      if (!reason.empty()) reason += "; ";
      reason += "anomaly: " + s.anomaly.describe(r);
      switch (d_->options().policy) {
        case AnomalyPolicy::kFlag:
          s.next.push_back(r);
          break;
        case AnomalyPolicy::kReject:
          m.anomalies_rejected->inc();
          fail_row(st, r, invalid_input(fmt::format("row {}: {}", r, reason)));
          break;
        case AnomalyPolicy::kRoute:
          if (st.snap.chain->size() < 2) {
            fail_row(st, r,
                     unavailable(fmt::format("row {}: anomaly: routed past the primary, but it has no fallback", r)));
          } else {
            m.anomalies_routed->inc();
            if (!st.any_routed) s.first_stage.assign(st.n, 0);  // first_stage is read only once any_routed
            s.first_stage[r] = 1;
            st.any_routed = true;
            s.next.push_back(r);
          }
          break;
      }
    }
    s.pending.swap(s.next);
  }

 private:
  std::shared_ptr<const AnomalyDetector> d_;
};

}  // namespace

std::shared_ptr<const Screen> make_screen(std::shared_ptr<const AnomalyDetector> detector) {
  if (!detector) return std::make_shared<NoScreen>();
  return std::make_shared<DetectorScreen>(std::move(detector));
}

Next stage_screen(ScoringEngine::Impl& m, RequestState& st) noexcept {
  try {
    m.screen->run(m, st);
    return Next::kContinue;
  } catch (...) {
    st.error = internal_error("screen: out of memory");
    return Next::kStop;
  }
}

}  // namespace keel::detail
