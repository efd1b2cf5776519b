// libFuzzer target for the DNS parser.
#include "agent/protocols/common/testing/fuzz_driver.h"
#include "agent/protocols/dns/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::agent::protocols::testing::FuzzFrameParser<sonde::agent::protocols::dns::Traits>(
      data, size, "DNS");
  return 0;
}
