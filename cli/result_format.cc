// Table/CSV/JSON rendering of query answers.
#include "cli/result_format.h"

#include <algorithm>
#include <vector>

namespace sonde::cli {

namespace {

std::string CellText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "NULL";
  return v.dump();
}

std::string CsvQuote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Display width in code points, so UTF-8 text lines up.
size_t Width(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

}  // namespace

bool ParseOutputFormat(const std::string& name, OutputFormat* out) {
  if (name == "table") {
    *out = OutputFormat::kTable;
  } else if (name == "json") {
    *out = OutputFormat::kJson;
  } else if (name == "csv") {
    *out = OutputFormat::kCsv;
  } else {
    return false;
  }
  return true;
}

std::string FormatResult(const nlohmann::json& answer, OutputFormat format) {
  if (format == OutputFormat::kJson) return answer.dump(2) + "\n";
  std::vector<std::string> header;
  for (const auto& c : answer.value("columns", nlohmann::json::array())) {
    header.push_back(c.value("name", ""));
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : answer.value("rows", nlohmann::json::array())) {
    std::vector<std::string> row;
    for (const auto& v : r) row.push_back(CellText(v));
    row.resize(header.size());
    rows.push_back(std::move(row));
  }
  std::string out;
  if (format == OutputFormat::kCsv) {
    auto line = [&out](const std::vector<std::string>& cells) {
      for (size_t i = 0; i < cells.size(); ++i) {
        if (i) out += ',';
        out += CsvQuote(cells[i]);
      }
      out += '\n';
    };
    line(header);
    for (const auto& r : rows) line(r);
    return out;
  }
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = Width(header[i]);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], Width(r[i]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i) out += " | ";
      out += cells[i];
      if (i + 1 < cells.size()) out.append(widths[i] - Width(cells[i]), ' ');
    }
    out += '\n';
  };
  line(header);
  for (size_t i = 0; i < widths.size(); ++i) {
    if (i) out += "-+-";
    out.append(widths[i], '-');
  }
  out += '\n';
  for (const auto& r : rows) line(r);
  out += "(" + std::to_string(rows.size()) + " row" + (rows.size() == 1 ? "" : "s") + ")\n";
  return out;
}

}  // namespace sonde::cli
