#pragma once
// The boundary every loader shares: the size cap, and turning load-time
// exceptions (keel::Error from the parsers, allocation failure) into a
// Status prefixed with the format's name. Stateless; thread-safe.

#include "model/loaders/json_doc.hpp"

#include <keel/core/result.hpp>
#include <keel/model/loaders.hpp>

#include <fmt/format.h>

#include <new>
#include <string_view>

namespace keel::detail {

// Builders over an already parsed document (load_model parses once, then
// dispatches on the top-level keys). They throw keel::Error; call them
// inside guarded_load.
Result<ModelPtr> xgboost_from_document(const Json& root, ModelFormat format, std::size_t input_bytes,
                                       const LoadOptions& opts);
Result<ModelPtr> keel_linear_from_document(const Json& root, std::size_t input_bytes, const LoadOptions& opts);

template <class F>
Result<ModelPtr> guarded_load(std::string_view format, std::size_t size, const LoadOptions& opts, F&& load) {
  if (size > opts.max_bytes) {
    return model_error(fmt::format("{}: {} bytes exceed the {}-byte limit", format, size, opts.max_bytes));
  }
  try {
    Result<ModelPtr> r = load();
    if (!r.ok()) return r.status().with_context(format);
    return r;
  } catch (const Error& e) {
    Status s = e.status();
    return s.with_context(format);
  } catch (const std::bad_alloc&) {
    return model_error(fmt::format("{}: out of memory while loading", format));
  } catch (const std::exception& e) {
    return model_error(fmt::format("{}: {}", format, e.what()));
  }
}

}  // namespace keel::detail
