// libFuzzer target for the TLS parser.
#include "agent/protocols/common/testing/fuzz_driver.h"
#include "agent/protocols/tls/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::agent::protocols::testing::FuzzFrameParser<sonde::agent::protocols::tls::Traits>(
      data, size, "TLS");
  return 0;
}
