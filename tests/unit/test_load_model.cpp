// load_model / load_model_from_memory: format detection from content, ids,
// versions, and clear errors for files that are none of the formats.

#include <keel/model/loaders.hpp>

#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace keel;

namespace {

const std::string kData = KEEL_TEST_DATA_DIR;

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

Status memory_error(const std::string& content) {
  auto r = load_model_from_memory(bytes_of(content));
  REQUIRE_FALSE(r.ok());
  return r.status();
}

}  // namespace

TEST_CASE("load_model: detects XGBoost JSON and UBJSON by content", "[model][load]") {
  std::uint64_t last_version = 0;
  for (const char* name : {"binary_logistic", "categorical", "dart", "gblinear", "multi_softmax"}) {
    for (const char* ext : {".json", ".ubj"}) {
      const std::filesystem::path p = kData + "/xgboost/" + name + ext;
      auto r = load_model(p);
      INFO(p << ": " << r.status().to_string());
      REQUIRE(r.ok());
      const ModelInfo& mi = (*r)->info();
      CHECK(mi.format == (std::string(ext) == ".json" ? ModelFormat::kXGBoostJson : ModelFormat::kXGBoostUbjson));
      CHECK(mi.id == name);
      CHECK(mi.version > last_version);
      last_version = mi.version;
    }
  }
  // The extension does not matter: UBJSON bytes from memory, a chosen id.
  const std::string ubj = test::read_file(kData + "/xgboost/reg_gamma.ubj");
  LoadOptions o;
  o.id = "gamma-v2";
  auto r = load_model_from_memory(bytes_of(ubj), o);
  REQUIRE(r.ok());
  CHECK((*r)->info().format == ModelFormat::kXGBoostUbjson);
  CHECK((*r)->info().id == "gamma-v2");
}

TEST_CASE("load_model: Keel linear JSON, with a byte order mark and leading space", "[model][load]") {
  const std::string text = "\xEF\xBB\xBF \n" + test::read_file(kData + "/linear/credit_logistic.json");
  auto r = load_model_from_memory(bytes_of(text));
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  CHECK((*r)->info().format == ModelFormat::kKeelLinearJson);
  CHECK((*r)->info().id == "model");
}

TEST_CASE("load_model: LightGBM text goes to the LightGBM loader", "[model][load]") {
  // Whatever that loader says about this broken file, it is not "unknown format".
  const Status s = memory_error("tree\nversion=v4\nnum_class=oops\n");
  CHECK(s.code() == StatusCode::kModelError);
  CHECK_THAT(s.message(), !Catch::Contains("unknown model format"));
}

TEST_CASE("load_model: unknown or broken content is a clear error", "[model][load][errors]") {
  Status s = memory_error("hello, world");
  CHECK(s.code() == StatusCode::kModelError);
  CHECK_THAT(s.message(), Catch::Contains("unknown model format") && Catch::Contains("'hello, world'"));
  s = memory_error(std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK_THAT(s.message(), Catch::Contains("\\x89PNG\\x0d\\x0a"));
  s = memory_error("");
  CHECK_THAT(s.message(), Catch::Contains("unknown model format") && Catch::Contains("0 bytes"));
  s = memory_error(R"({"booster": "gbtree", "trees": []})");
  CHECK_THAT(s.message(), Catch::Contains("neither 'learner'") && Catch::Contains("booster, trees"));
  s = memory_error(R"({"learner": {}})");
  CHECK_THAT(s.message(), Catch::Contains("XGBoost") && Catch::Contains("learner_model_param"));
  s = memory_error(R"({"keel_linear": 1})");
  CHECK_THAT(s.message(), Catch::Contains("Keel linear") && Catch::Contains("num_features"));
  s = memory_error("[1, 2]");
  CHECK_THAT(s.message(), Catch::Contains("unknown model format"));
}

TEST_CASE("load_model: missing files and the size limit", "[model][load][errors]") {
  auto r = load_model(kData + "/xgboost/no_such_model.json");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("no_such_model.json"));

  LoadOptions o;
  o.max_bytes = 1000;
  r = load_model(kData + "/xgboost/binary_logistic.json", o);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("larger than the 1000-byte limit"));
  r = load_model_from_memory(bytes_of(std::string(2000, ' ')), o);
  CHECK_THAT(r.status().message(), Catch::Contains("exceed the 1000-byte limit"));

  // Errors from inside a file name the file.
  const auto dir = std::filesystem::path(KEEL_BINARY_DIR) / "test_load_model";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "broken.json") << R"({"learner": {"learner_model_param": {}}})";
  }
  r = load_model(dir / "broken.json");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("broken.json") && Catch::Contains("num_feature"));
}

TEST_CASE("load_model: every fuzz seed is a valid model", "[model][load][fuzz]") {
  // The seeds are small models saved by XGBoost 1.7.4 (gbtree, dart,
  // gblinear, multi:softmax, a categorical split) and Keel linear files; a
  // seed that does not load would only fuzz the error paths.
  std::size_t n = 0;
  for (const char* dir : {"xgboost_json", "xgboost_ubjson", "linear_json"}) {
    for (const auto& e : std::filesystem::directory_iterator(std::string(KEEL_SOURCE_DIR) + "/tests/fuzz/corpus/" + dir)) {
      auto r = load_model(e.path());
      INFO(e.path() << ": " << r.status().to_string());
      CHECK(r.ok());
      ++n;
    }
  }
  CHECK(n >= 15);
}
