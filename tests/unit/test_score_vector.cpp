// ScoreVector (a Response's scores): inline up to four floats, on the heap
// beyond, and the vector-like operations the rest of Keel uses.

#include <catch2/catch.hpp>

#include <keel/core/score_vector.hpp>

#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

using keel::ScoreVector;

namespace {

// Which storage the values are in: inside the object or elsewhere.
bool inline_storage(const ScoreVector& v) {
  const auto* self = reinterpret_cast<const char*>(&v);
  const auto* p = reinterpret_cast<const char*>(v.data());
  return p >= self && p < self + sizeof(ScoreVector);
}

std::vector<float> iota(std::size_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 1.0f);
  return v;
}

}  // namespace

TEST_CASE("ScoreVector holds up to four scores inline and more on the heap", "[score_vector]") {
  for (std::size_t n = 0; n <= 9; ++n) {
    const std::vector<float> want = iota(n);
    ScoreVector v;
    v.assign(want.begin(), want.end());
    CHECK(v.size() == n);
    CHECK(v == want);
    CHECK(inline_storage(v) == (n <= ScoreVector::kInline));
    CHECK(v.to_vector() == want);
    const std::span<const float> s = v;
    CHECK(s.size() == n);
    if (n > 0) {
      CHECK(v.front() == 1.0f);
      CHECK(v.back() == static_cast<float>(n));
      CHECK(v.at(n - 1) == static_cast<float>(n));
    }
    CHECK_THROWS_AS(v.at(n), std::out_of_range);
  }
}

TEST_CASE("ScoreVector copies and moves keep the values, inline or not", "[score_vector]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{4}, std::size_t{5}, std::size_t{12}}) {
    const std::vector<float> want = iota(n);
    ScoreVector a(want);
    ScoreVector b = a;  // copy
    CHECK(b == want);
    CHECK(b.data() != a.data());
    b[0] = -1.0f;
    CHECK(a[0] == 1.0f);  // a deep copy
    ScoreVector c = std::move(a);
    CHECK(c == want);
    CHECK(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from ScoreVector is empty
    ScoreVector d{9.0f};
    d = c;  // copy-assign over a smaller one
    CHECK(d == want);
    ScoreVector e(20, 2.0f);
    e = std::move(d);  // move-assign over a heap one
    CHECK(e == want);
    e = {0.5f};
    CHECK(e == std::vector<float>{0.5f});
    const ScoreVector& alias = e;
    e = alias;  // self-assignment keeps the values
    CHECK(e == std::vector<float>{0.5f});
  }
}

TEST_CASE("ScoreVector grows by push_back and resize across the inline limit", "[score_vector]") {
  ScoreVector v;
  for (int i = 0; i < 11; ++i) {
    v.push_back(static_cast<float>(i));
    REQUIRE(v.size() == static_cast<std::size_t>(i + 1));
    for (int j = 0; j <= i; ++j) REQUIRE(v[static_cast<std::size_t>(j)] == static_cast<float>(j));
  }
  v.resize(3);
  CHECK(v == std::vector<float>{0.0f, 1.0f, 2.0f});
  v.resize(6, 7.0f);
  CHECK(v == std::vector<float>{0.0f, 1.0f, 2.0f, 7.0f, 7.0f, 7.0f});
  v.assign(2, 0.25f);
  CHECK(v == std::vector<float>{0.25f, 0.25f});
  v.clear();
  CHECK(v.empty());
  ScoreVector w;
  w.resize(5, 1.0f);  // straight past the inline limit
  CHECK(w == std::vector<float>(5, 1.0f));
}

TEST_CASE("ScoreVector equality is value equality, as for std::vector<float>", "[score_vector]") {
  const ScoreVector a{1.0f, 2.0f};
  CHECK(a == ScoreVector{1.0f, 2.0f});
  CHECK(a != ScoreVector{1.0f});
  CHECK(a != ScoreVector{1.0f, 3.0f});
  CHECK(std::vector<float>{1.0f, 2.0f} == a);
  const ScoreVector nan{std::nanf("")};
  CHECK(nan != nan);  // as std::vector<float>{NaN} != itself
}
