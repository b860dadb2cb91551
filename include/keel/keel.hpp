#pragma once
// Umbrella header: everything a host application needs to embed Keel.
// (Each header also stands alone; include only what you use to keep builds fast.)
#include <keel/version.hpp>
#include <keel/core/core.hpp>

#include <keel/model/linear_model.hpp>
#include <keel/model/loaders.hpp>
#include <keel/model/model.hpp>
#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_ensemble.hpp>
#include <keel/model/tree_spec.hpp>

#include <keel/resilience/adaptive_limit.hpp>
#include <keel/resilience/bulkhead.hpp>
#include <keel/resilience/cache.hpp>
#include <keel/resilience/circuit_breaker.hpp>
#include <keel/resilience/executor.hpp>
#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/fault_injector.hpp>
#include <keel/resilience/guarded_call.hpp>
#include <keel/resilience/idempotency.hpp>
#include <keel/resilience/retry_policy.hpp>
#include <keel/resilience/isolation.hpp>

#include <keel/validate/validate.hpp>

#include <keel/engine/config.hpp>
#include <keel/engine/event_log.hpp>
#include <keel/engine/metrics.hpp>
#include <keel/engine/scoring_engine.hpp>
#include <keel/engine/transforms.hpp>
