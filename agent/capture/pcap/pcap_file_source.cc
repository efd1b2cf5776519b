// libpcap offline reading with nanosecond timestamps.
#include "agent/capture/pcap/pcap_file_source.h"

#include <pcap/pcap.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <sys/stat.h>

namespace sonde::agent::capture {

bool LinkTypeFromDlt(int dlt, LinkType* out) {
  switch (dlt) {
    case DLT_NULL:
    case DLT_LOOP:
      *out = LinkType::kNull;
      return true;
    case DLT_EN10MB:
      *out = LinkType::kEthernet;
      return true;
    case 12:   // DLT_RAW on most platforms
    case 14:   // DLT_RAW on OpenBSD
    case 101:  // LINKTYPE_RAW
      *out = LinkType::kRaw;
      return true;
    case 228:
      *out = LinkType::kIpv4;
      return true;
    case 229:
      *out = LinkType::kIpv6;
      return true;
    case DLT_LINUX_SLL:
      *out = LinkType::kLinuxSll;
      return true;
    case 276:  // DLT_LINUX_SLL2
      *out = LinkType::kLinuxSll2;
      return true;
    default:
      return false;
  }
}

Status PcapFileSource::Run(EventSink& sink, const std::atomic<bool>& stop) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return NotFoundError("pcap file " + path_ + ": " + std::strerror(errno));
  }
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, decltype(&pcap_close)> handle(
      pcap_open_offline_with_tstamp_precision(path_.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf),
      &pcap_close);
  if (!handle) {
    ++stats_.malformed;
    return InvalidArgumentError("cannot read capture " + path_ + ": " + errbuf);
  }
  LinkType link;
  int dlt = pcap_datalink(handle.get());
  if (!LinkTypeFromDlt(dlt, &link)) {
    return UnimplementedError("capture " + path_ + " has unsupported link type " +
                              std::to_string(dlt));
  }
  const bool nano = pcap_get_tstamp_precision(handle.get()) == PCAP_TSTAMP_PRECISION_NANO;
  uint64_t last_ns = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    int rc = pcap_next_ex(handle.get(), &hdr, &data);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc == PCAP_ERROR) {
      ++stats_.malformed;
      std::string err = pcap_geterr(handle.get());
      // A file cut short (copy interrupted, capture killed) ends cleanly with what was read.
      if (err.find("truncated") != std::string::npos) break;
      return DataLossError("corrupt capture " + path_ + " after " + std::to_string(stats_.events) +
                           " packets: " + err);
    }
    if (rc != 1 || hdr == nullptr) continue;
    // Some writers record a wire length below the captured length (go-sniffer, for one). The
    // captured bytes are real: keep them, and take the wire length to be at least what was
    // captured (libpcap already bounds caplen by the snapshot length).
    const uint32_t wire_length = std::max(hdr->len, hdr->caplen);
    uint64_t frac = static_cast<uint64_t>(hdr->ts.tv_usec);
    uint64_t ts_ns = static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000'000ull +
                     (nano ? frac : frac * 1000);
    PacketView view;
    view.timestamp_ns = ts_ns;
    view.data = std::span<const uint8_t>(data, hdr->caplen);
    view.wire_length = wire_length;
    view.link_type = link;
    ++stats_.events;
    stats_.bytes += hdr->caplen;
    sink.OnPacket(view);
    last_ns = std::max(last_ns, ts_ns);
  }
  if (last_ns != 0) sink.OnIdle(last_ns);
  return Status::Ok();
}

}  // namespace sonde::agent::capture
