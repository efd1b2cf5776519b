// Fuzzes the whole translation path (tokenizer, parser, resolution, rendering) on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/query/translator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sonde::server::query::Catalog catalog = sonde::server::query::Catalog::FromSchema();
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  auto t = sonde::server::query::Translate("flow_log", sql, catalog);
  if (!t.ok()) (void)t.status();
  return 0;
}
