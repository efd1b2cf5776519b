// libFuzzer target for the HTTP/2 parser.
#include "agent/protocols/common/testing/fuzz_driver.h"
#include "agent/protocols/http2/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::agent::protocols::testing::FuzzFrameParser<sonde::agent::protocols::http2::Traits>(
      data, size, "HTTP2");
  return 0;
}
