// PcapFileSource: replays a pcap or pcapng file into an EventSink with the packets' own
// timestamps, so replays are deterministic. Classic pcap is read from a memory map; pcapng and
// older pcap versions through libpcap.
#pragma once

#include <string>

#include "agent/capture/event_source.h"

namespace sonde::agent::capture {

class PcapFileSource : public EventSource {
 public:
  explicit PcapFileSource(std::string path) : path_(std::move(path)) {}

  std::string_view name() const override { return "pcap"; }
  // OK at the end of the file, also when the file ends mid-record (counted as malformed).
  // Errors: the file cannot be opened or is not a capture (NotFound / InvalidArgument), an
  // unsupported link type (Unimplemented), corruption in the middle of the file (DataLoss).
  Status Run(EventSink& sink, const std::atomic<bool>& stop) override;
  SourceStats stats() const override { return stats_; }

 private:
  Status RunMapped(EventSink& sink, const std::atomic<bool>& stop, bool* handled);

  std::string path_;
  SourceStats stats_;
};

// Maps a libpcap DLT value to our LinkType; false when we cannot decode that link type.
bool LinkTypeFromDlt(int dlt, LinkType* out);

}  // namespace sonde::agent::capture
