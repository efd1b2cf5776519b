// Offline reading with nanosecond timestamps: classic pcap files (version 2.4, either byte
// order, micro- or nanosecond) are read straight from a read-only memory map; anything else
// (pcapng, older versions) goes through libpcap.
#include "agent/capture/pcap/pcap_file_source.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

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

namespace {

constexpr uint32_t kMagicMicro = 0xa1b2c3d4;
constexpr uint32_t kMagicNano = 0xa1b23c4d;
// libpcap's bound on a record's captured length (MAXIMUM_SNAPLEN); larger means corruption.
constexpr uint32_t kMaxSnaplen = 262144;

uint32_t Load32(const uint8_t* p, bool swapped) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swapped ? __builtin_bswap32(v) : v;
}

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  // False when the file cannot be mapped (the caller falls back to libpcap).
  bool Map(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return false;
    }
    void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) return false;
    ::madvise(m, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
    data_ = static_cast<const uint8_t*>(m);
    size_ = static_cast<size_t>(st.st_size);
    return true;
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

// The classic pcap format read in place (no copy per packet, no read() calls), with libpcap's
// rules: a record cut short at the end of the file ends the replay cleanly (counted as
// malformed); a captured length above the format's maximum is corruption; a captured length
// above the file's snapshot length keeps the first snapshot-length bytes.
// *handled is false when the file is not a classic 2.4 pcap (the caller uses libpcap).
Status PcapFileSource::RunMapped(EventSink& sink, const std::atomic<bool>& stop, bool* handled) {
  *handled = false;
  MappedFile file;
  if (!file.Map(path_) || file.size() < 24) return Status::Ok();
  const uint8_t* p = file.data();
  uint32_t magic;
  std::memcpy(&magic, p, 4);
  bool swapped = false, nano = false;
  if (magic == kMagicMicro || magic == kMagicNano) {
    nano = magic == kMagicNano;
  } else if (magic == __builtin_bswap32(kMagicMicro) || magic == __builtin_bswap32(kMagicNano)) {
    swapped = true;
    nano = magic == __builtin_bswap32(kMagicNano);
  } else {
    return Status::Ok();
  }
  uint16_t major, minor;
  std::memcpy(&major, p + 4, 2);
  std::memcpy(&minor, p + 6, 2);
  if (swapped) {
    major = __builtin_bswap16(major);
    minor = __builtin_bswap16(minor);
  }
  if (major != 2 || minor != 4) return Status::Ok();  // older layouts: libpcap knows them
  *handled = true;
  uint32_t snaplen = Load32(p + 16, swapped);
  if (snaplen == 0 || snaplen > kMaxSnaplen) snaplen = kMaxSnaplen;
  const int dlt = static_cast<int>(Load32(p + 20, swapped) & 0x03FFFFFF);
  LinkType link;
  if (!LinkTypeFromDlt(dlt, &link)) {
    return UnimplementedError("capture " + path_ + " has unsupported link type " +
                              std::to_string(dlt));
  }
  size_t off = 24;
  uint64_t last_ns = 0;
  const size_t size = file.size();
  // Packets go to the sink a batch at a time (the whole file stays mapped, so their views stay
  // valid), which lets it look ahead; every exit hands over what is batched first.
  constexpr size_t kPrefetchAhead = 2048;
  PacketBatch batch(sink);
  while (off < size && !stop.load(std::memory_order_relaxed)) {
    if (size - off < 16) {
      ++stats_.malformed;  // a record header cut short: the file ends here
      break;
    }
    const uint8_t* h = p + off;
    // The file is read front to back: start loading what the next packets hold (the hardware
    // prefetcher stops at every page boundary).
    __builtin_prefetch(h + kPrefetchAhead);
    __builtin_prefetch(h + kPrefetchAhead + 64);
    const uint32_t sec = Load32(h, swapped);
    const uint32_t frac = Load32(h + 4, swapped);
    const uint32_t caplen = Load32(h + 8, swapped);
    const uint32_t len = Load32(h + 12, swapped);
    if (caplen > kMaxSnaplen) {
      ++stats_.malformed;
      batch.Flush();
      return DataLossError("corrupt capture " + path_ + " after " + std::to_string(stats_.events) +
                           " packets: invalid packet capture length " + std::to_string(caplen));
    }
    if (size - off - 16 < caplen) {
      ++stats_.malformed;  // packet bytes cut short: the file ends here
      break;
    }
    const uint32_t kept = std::min(caplen, snaplen);
    // See the libpcap path below for why the wire length is at least the captured length.
    const uint32_t wire_length = std::max(len, kept);
    const uint64_t ts_ns = uint64_t{sec} * 1'000'000'000ull + (nano ? frac : uint64_t{frac} * 1000);
    PacketView view;
    view.timestamp_ns = ts_ns;
    view.data = std::span<const uint8_t>(h + 16, kept);
    view.wire_length = wire_length;
    view.link_type = link;
    ++stats_.events;
    stats_.bytes += kept;
    last_ns = std::max(last_ns, ts_ns);
    off += 16 + size_t{caplen};
    batch.Add(view);
  }
  batch.Flush();
  if (last_ns != 0) sink.OnIdle(last_ns);
  return Status::Ok();
}

Status PcapFileSource::Run(EventSink& sink, const std::atomic<bool>& stop) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return NotFoundError("pcap file " + path_ + ": " + std::strerror(errno));
  }
  bool handled = false;
  Status mapped = RunMapped(sink, stop, &handled);
  if (handled) return mapped;
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
