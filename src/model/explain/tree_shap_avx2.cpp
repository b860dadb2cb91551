// The TreeSHAP passes (tree_shap.hpp) compiled with AVX2 + FMA: the
// W-lane loops become 4-wide double vectors.

#include "model/explain/tree_shap.hpp"

namespace keel::detail {

ShapTreeFn<float> shap_tree_fn_f_avx2(std::uint32_t w) noexcept { KEEL_SHAP_TABLE(float, w) }
ShapTreeFn<double> shap_tree_fn_d_avx2(std::uint32_t w) noexcept { KEEL_SHAP_TABLE(double, w) }

}  // namespace keel::detail
