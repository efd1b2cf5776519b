// libFuzzer target for the HTTP/1 parser.
#include "agent/protocols/common/testing/fuzz_driver.h"
#include "agent/protocols/http1/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::agent::protocols::testing::FuzzFrameParser<sonde::agent::protocols::http1::Traits>(
      data, size, "HTTP1");
  return 0;
}
