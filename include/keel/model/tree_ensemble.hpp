#pragma once
// TreeEnsemble (make_tree_ensemble): the hot-path evaluator for tree ensembles. Built once at load
// from a validated TreeEnsembleSpec into flat node arrays, with a layout and
// a SIMD kernel chosen per model; answers bit-identically to the reference
// evaluator (reference_evaluator.hpp: reference_margin / apply_transform), including XGBoost's float32
// accumulation in tree order. Immutable; predict() is thread-safe.
//
// Layouts:
//  kHeap:    every tree padded to the model's depth as an implicit heap
//            (child = 2j + (x >= t)); branch-free, SIMD across rows; for
//            numeric-only models of depth <= kMaxHeapDepth. With AVX-512 or
//            AVX2 and depth >= 4 the top 4 levels (15 nodes) are decided
//            without gathers: each node is one compare of a feature column
//            of 16 (8) rows, the results are packed into a 15-bit word per
//            row and walked with shifts; deeper levels walk with gathers.
//            Single rows (fewer than 8 per call) of models with >= 16 trees
//            walk a second copy of the nodes blocked 3 levels per cache
//            line, 16 trees in lockstep, allocation-free.
//
// Threads (PredictOptions::threads): batches of at least 65536 tree-rows
// use the pool, rows split into tasks, or trees split when there are fewer
// than 64 rows; results are bit-identical for any thread count.
//  kCompact: explicit nodes with adjacent children; any depth, any split
//            kind. With AVX-512 and only plain numeric splits and constant
//            leaves (the usual LightGBM and lossguide models), the top 4
//            levels are padded to a heap and decided by column compares as
//            above, then 16-row vectors walk the rest with gathers. Otherwise
//            (categorical nodes, zero-as-missing bands that need two
//            compares, linear leaves) portable scalar walks in lockstep.

#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace keel {

// kReference builds the plain reference evaluator instead (for checking a
// model's fast answers against it, e.g. KEEL_KERNEL=reference).
enum class TreeKernel : std::uint8_t { kAuto, kScalar, kAvx2, kAvx512, kReference };
enum class TreeLayout : std::uint8_t { kAuto, kHeap, kCompact };

std::string_view to_string(TreeKernel k) noexcept;
std::string_view to_string(TreeLayout l) noexcept;
// "auto", "scalar", "avx2", "avx512", "reference" -> the kernel; false on
// anything else.
bool parse_tree_kernel(std::string_view name, TreeKernel& out) noexcept;

// Whether this CPU (and this build) can run the kernel. kAuto and kScalar
// and kReference always can.
bool tree_kernel_supported(TreeKernel k) noexcept;

// The kernel kAuto resolves to: the process-wide override if one was set
// (set_default_tree_kernel, else the KEEL_KERNEL environment variable read
// once), otherwise the best kernel the CPU supports. Thread-safe.
TreeKernel default_tree_kernel() noexcept;
// Overrides kAuto for models built afterwards (tests, `keel bench
// --kernel`); kAuto restores CPU detection. Errors if unsupported.
[[nodiscard]] Status set_default_tree_kernel(TreeKernel k) noexcept;

inline constexpr std::size_t kMaxHeapDepth = 10;

// The binned heap kernel (AVX-512 VBMI, heap layout): feature values become
// byte codes against the model's own sorted thresholds once per block of 64
// rows, and the first 8 levels of each tree are decided for a row by byte
// permutes and compares, without gathers (src/model/trees/tree_binned.hpp).
// Exact for every heap model it accepts; a feature with more than 254
// distinct thresholds takes one code byte per 254 of them; it refuses models
// whose trees read more than 255 such bytes per row. kAuto: on for depth >= 6
// and at least twice as many trees as code bytes (where it measured faster;
// batches only, single rows keep the blocked row layout); kOn: on wherever
// it applies, else an error (for tests); kOff: the heap kernel.
enum class TreeBinning : std::uint8_t { kAuto, kOff, kOn };

struct TreeEnsembleOptions {
  TreeKernel kernel = TreeKernel::kAuto;  // a forced kernel must be supported
  TreeLayout layout = TreeLayout::kAuto;  // kHeap errors when the model does not fit it
  // AVX-512 kernels: decide the top 4 levels of every tree by comparing
  // whole feature columns of a transposed block (no gathers) instead of
  // walking them. Same answers either way; false is for measuring the gain.
  bool column_top_levels = true;
  // Keep the single-row copy of the nodes (heap models: the blocked row
  // layout, about +115% of the heap's nodes at depth 8; AVX-512 compact
  // models: the scalar node array beside the kernel's). false drops it for
  // hosts that score batches: single rows then walk the batch layout (same
  // answers, slower; on compact models not allocation-free).
  bool single_row_copy = true;
  TreeBinning binning = TreeBinning::kAuto;
};

// Bytes a model built by make_tree_ensemble holds, per layout (0: not
// built). For `keel inspect` and hosts sizing their memory.
struct TreeMemory {
  std::size_t spec = 0;          // the validated spec (reference walk, SHAP, special nodes)
  std::size_t heap = 0;          // heap layout, with its column-compare top levels
  std::size_t row = 0;           // single-row copy of the heap
  std::size_t compact = 0;       // compact scalar nodes and leaves
  std::size_t compact_simd = 0;  // AVX-512 compact arrays, with top levels
  std::size_t double_rows = 0;   // float64 row map (LightGBM)
  std::size_t binned = 0;        // binned kernel's nodes and threshold tables
  std::size_t total() const noexcept { return spec + heap + row + compact + compact_simd + double_rows + binned; }
};

// Validates the spec and builds the fast model. Loaders return this.
[[nodiscard]] Result<ModelPtr> make_tree_ensemble(TreeEnsembleSpec spec, const TreeEnsembleOptions& opts = {});

// The kernel and layout a model built by make_tree_ensemble runs; kAuto for
// any other Model (including a kReference one).
TreeKernel tree_kernel_of(const Model& m) noexcept;
TreeLayout tree_layout_of(const Model& m) noexcept;
// All zero for any other Model.
TreeMemory tree_memory_of(const Model& m) noexcept;
// Whether the model runs the binned kernel; if not, why (empty for any
// other Model).
bool tree_binned_of(const Model& m) noexcept;
std::string tree_binning_note(const Model& m);

}  // namespace keel
