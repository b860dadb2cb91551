#pragma once
// A tiny CSV reader for the examples: a header line, then rows of numbers;
// an empty cell is missing (NaN).

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace example {

inline std::vector<std::vector<float>> read_rows(const std::filesystem::path& path) {
  std::vector<std::vector<float>> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<float> row;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) row.push_back(cell.empty() ? NAN : std::stof(cell));
    if (!line.empty() && line.back() == ',') row.push_back(NAN);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace example
