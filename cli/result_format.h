// Renders a query answer ({columns:[{name,type}], rows:[[...]]}) as an aligned table, CSV or JSON.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace sonde::cli {

enum class OutputFormat { kTable, kJson, kCsv };

// nullopt-free: unknown names map to kTable; returns false when the name was not recognised.
bool ParseOutputFormat(const std::string& name, OutputFormat* out);

std::string FormatResult(const nlohmann::json& answer, OutputFormat format);

}  // namespace sonde::cli
