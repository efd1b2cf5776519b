// DNS message parsing (names with compression, first answers), id pairing and inference.
#include "agent/protocols/dns/parser.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "agent/protocols/common/record_util.h"

namespace sonde::agent::protocols::dns {
namespace {

constexpr size_t kHeaderBytes = 12;
constexpr int kMaxAnswers = 4;
constexpr size_t kMaxPending = 512;

uint16_t Be16(std::string_view s, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(s[off]) << 8 | static_cast<uint8_t>(s[off + 1]));
}

constexpr size_t kMaxNameBytes = 255;  // dotted text

// Walks a (possibly compressed) name at *off; advances *off past it in the original position.
// Writes the dotted name to `text` (at least kMaxNameBytes bytes) unless it is null, and its
// length to *text_len either way. False for a malformed or too long name.
bool WalkName(std::string_view msg, size_t* off, char* text, size_t* text_len) {
  size_t pos = *off;
  bool jumped = false;
  int jumps = 0;
  size_t n = 0;
  for (int labels = 0; labels < 128; ++labels) {
    if (pos >= msg.size()) return false;
    const uint8_t len = static_cast<uint8_t>(msg[pos]);
    if (len == 0) {
      if (!jumped) *off = pos + 1;
      *text_len = n;
      return true;
    }
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size() || ++jumps > 16) return false;
      const size_t target = Be16(msg, pos) & 0x3fff;
      if (!jumped) *off = pos + 2;
      jumped = true;
      if (target >= msg.size()) return false;
      pos = target;
      continue;
    }
    if ((len & 0xc0) != 0 || pos + 1 + len > msg.size()) return false;
    const size_t dot = n > 0 ? 1 : 0;
    if (n + dot + len > kMaxNameBytes) return false;
    if (text != nullptr) {
      if (dot) text[n] = '.';
      std::memcpy(text + n + dot, msg.data() + pos + 1, len);
    }
    n += dot + len;
    pos += 1 + len;
  }
  return false;
}

// Reads a name into *out (assigned once: growing it label by label reallocated long names).
bool ReadName(std::string_view msg, size_t* off, std::string* out) {
  char text[kMaxNameBytes];
  size_t len = 0;
  if (!WalkName(msg, off, text, &len)) {
    out->clear();
    return false;
  }
  out->assign(text, len);
  return true;
}

// Moves *off past a name without building its text; fails exactly where ReadName would.
bool SkipName(std::string_view msg, size_t* off) {
  size_t len = 0;
  return WalkName(msg, off, nullptr, &len);
}

// Dotted quad, as inet_ntop(AF_INET) writes it (which went through sprintf).
std::string Ipv4Text(std::string_view four) {
  std::string out;
  out.reserve(15);
  for (int i = 0; i < 4; ++i) {
    if (i > 0) out.push_back('.');
    const unsigned v = static_cast<uint8_t>(four[static_cast<size_t>(i)]);
    if (v >= 100) out.push_back(static_cast<char>('0' + v / 100));
    if (v >= 10) out.push_back(static_cast<char>('0' + v / 10 % 10));
    out.push_back(static_cast<char>('0' + v % 10));
  }
  return out;
}

std::string RdataText(std::string_view msg, uint16_t type, size_t off, uint16_t len) {
  std::string_view rd = msg.substr(off, len);
  char buf[INET6_ADDRSTRLEN] = {};
  std::string name;
  switch (type) {
    case 1:
      if (len == 4) return Ipv4Text(rd);
      break;
    case 28:
      if (len == 16 && inet_ntop(AF_INET6, rd.data(), buf, sizeof(buf))) return buf;
      break;
    case 2:
    case 5:
    case 12: {
      size_t o = off;
      if (ReadName(msg, &o, &name)) return name;
      break;
    }
    case 15: {
      size_t o = off + 2;
      if (len > 2 && ReadName(msg, &o, &name)) return name;
      break;
    }
    case 16:
      if (len > 1) {
        return std::string(rd.substr(1, std::min<size_t>(static_cast<uint8_t>(rd[0]), len - 1)));
      }
      break;
    default:
      break;
  }
  return QtypeName(type);
}

}  // namespace

std::string QtypeName(uint16_t t) {
  switch (t) {
    case 1: return "A";
    case 2: return "NS";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 13: return "HINFO";
    case 15: return "MX";
    case 16: return "TXT";
    case 28: return "AAAA";
    case 29: return "LOC";
    case 33: return "SRV";
    case 35: return "NAPTR";
    case 41: return "OPT";
    case 43: return "DS";
    case 44: return "SSHFP";
    case 46: return "RRSIG";
    case 47: return "NSEC";
    case 48: return "DNSKEY";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    case 251: return "IXFR";
    case 252: return "AXFR";
    case 255: return "ANY";
    case 257: return "CAA";
    default: return std::to_string(t);
  }
}

std::string_view RcodeName(uint8_t rcode) {
  static constexpr std::string_view kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                                "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                                "NXRRSET", "NOTAUTH", "NOTZONE"};
  return rcode < std::size(kNames) ? kNames[rcode] : std::string_view("RCODE");
}

bool ParseMessage(std::string_view msg, Frame* f) { return ParseMessage(msg, f, true); }

bool ParseMessage(std::string_view msg, Frame* f, bool with_text) {
  if (msg.size() < kHeaderBytes) return false;
  const uint16_t flags = Be16(msg, 2);
  const uint16_t qd = Be16(msg, 4), an = Be16(msg, 6), ns = Be16(msg, 8), ar = Be16(msg, 10);
  const uint8_t opcode = (flags >> 11) & 0xf;
  if (opcode > 6 || opcode == 3) return false;
  if (qd != 1 || an > 256 || ns > 256 || ar > 256) return false;
  f->id = Be16(msg, 0);
  f->is_response = (flags & 0x8000) != 0;
  f->rcode = flags & 0xf;
  if (!f->is_response && (an > 0 || f->rcode != 0)) return false;
  size_t off = kHeaderBytes;
  const bool name_ok = with_text ? ReadName(msg, &off, &f->qname) : SkipName(msg, &off);
  if (!name_ok || off + 4 > msg.size()) return false;
  f->qtype = Be16(msg, off);
  const uint16_t qclass = Be16(msg, off + 2);
  if (qclass != 1 && qclass != 3 && qclass != 4 && qclass != 255 && (qclass & 0x7fff) != 1) {
    return false;
  }
  off += 4;
  f->answers.clear();
  if (!with_text) return true;  // the answers never make a message invalid
  for (int i = 0; i < an && i < kMaxAnswers; ++i) {
    if (!SkipName(msg, &off) || off + 10 > msg.size()) break;  // truncated answers: keep
    const uint16_t type = Be16(msg, off);
    const uint16_t rdlen = Be16(msg, off + 8);
    off += 10;
    if (off + rdlen > msg.size()) break;
    if (!f->answers.empty()) f->answers += "; ";
    f->answers += RdataText(msg, type, off, rdlen);
    off += rdlen;
  }
  return true;
}

size_t Traits::FindFrameBoundary(MessageType, std::string_view buf, size_t start, State* state) {
  if (state->datagram) return start == 0 ? 0 : std::string_view::npos;
  // TCP: look for a length prefix followed by a plausible header with one question.
  for (size_t i = start; i + 2 + kHeaderBytes <= buf.size(); ++i) {
    const uint16_t len = Be16(buf, i);
    if (len < kHeaderBytes + 5 || Be16(buf, i + 2 + 4) != 1) continue;
    const uint8_t opcode = (static_cast<uint8_t>(buf[i + 4]) >> 3) & 0xf;
    if (opcode > 6) continue;
    return i;
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType, std::string_view* buf, Frame* frame, State* state) {
  std::string_view msg;
  size_t used = 0;
  if (state->datagram) {
    msg = *buf;
    used = buf->size();
  } else {
    if (buf->size() < 2) return ParseState::kNeedsMoreData;
    const uint16_t len = Be16(*buf, 0);
    if (len < kHeaderBytes) return ParseState::kInvalid;
    if (buf->size() < 2u + len) {
      // Validate the header early so garbage does not make us wait for 64 KiB.
      if (buf->size() >= 2 + kHeaderBytes && Be16(*buf, 6) != 1) return ParseState::kInvalid;
      return ParseState::kNeedsMoreData;
    }
    msg = buf->substr(2, len);
    used = 2u + len;
  }
  if (!ParseMessage(msg, frame)) return ParseState::kInvalid;
  buf->remove_prefix(used);
  return ParseState::kSuccess;
}

namespace {

// Moves the frames' strings into the record (the caller drops both frames next).
void BuildRecord(Frame& q, Frame* a, v1::L7RequestLog* rec) {
  FillFromFrames(&q, a, rec);
  rec->set_request_type(QtypeName(q.qtype));
  rec->set_request_resource(q.qname);
  rec->set_request_domain(q.qname);
  rec->set_endpoint(std::move(q.qname));
  rec->set_request_id(q.id);
  if (a == nullptr) return;
  rec->set_response_code(a->rcode);
  rec->set_response_result(std::move(a->answers));
  switch (a->rcode) {
    case 0:
      rec->set_response_status(common::v1::RESPONSE_STATUS_OK);
      break;
    case 1:
    case 3:
    case 5:
      rec->set_response_status(common::v1::RESPONSE_STATUS_CLIENT_ERROR);
      break;
    default:
      rec->set_response_status(common::v1::RESPONSE_STATUS_SERVER_ERROR);
      break;
  }
  if (a->rcode != 0) rec->set_response_exception(std::string(RcodeName(a->rcode)));
}

}  // namespace

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State*,
                    const StitchContext& ctx, RecordBuffer* out) {
  // The QR bit, not the direction, says what a message is (roles can be guessed wrong on UDP).
  for (auto it = requests->begin(); it != requests->end();) {
    if (it->is_response) {
      responses->push_back(std::move(*it));
      it = requests->erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = responses->begin(); it != responses->end();) {
    if (!it->is_response) {
      requests->push_back(std::move(*it));
      it = responses->erase(it);
    } else {
      ++it;
    }
  }
  // Usually already in time order (one question per UDP flow): checking first skips the
  // stable sort's temporary buffer, an allocation per call.
  auto earlier = [](const Frame& a, const Frame& b) { return a.timestamp_ns < b.timestamp_ns; };
  if (!std::is_sorted(requests->begin(), requests->end(), earlier)) {
    std::stable_sort(requests->begin(), requests->end(), earlier);
  }
  for (auto rit = responses->begin(); rit != responses->end();) {
    auto q = std::find_if(requests->begin(), requests->end(), [&](const Frame& f) {
      return f.id == rit->id && f.qtype == rit->qtype && f.timestamp_ns <= rit->timestamp_ns;
    });
    if (q == requests->end()) {
      ++rit;
      continue;
    }
    v1::L7RequestLog& rec = out->Add();
    BuildRecord(*q, &*rit, &rec);
    requests->erase(q);
    rit = responses->erase(rit);
  }
  // Responses with no question in sight: drop once nothing can still pair with them.
  if (requests->empty() || ctx.connection_closed || responses->size() > kMaxPending) {
    CountUnpairedResponses(ctx, responses->size());
    responses->clear();
  }
  while (!requests->empty() &&
         (IsTimedOut(requests->front().timestamp_ns, ctx) || requests->size() > kMaxPending)) {
    v1::L7RequestLog& rec = out->Add();
    BuildRecord(requests->front(), nullptr, &rec);
    MarkTimeout(&rec);
    requests->pop_front();
  }
}

namespace {

// Header and first question of a DNS-over-TCP message (after the length prefix), checked the
// way a real client or server writes them: binary data that merely parses is not enough.
bool PlausibleTcpMessage(flow::StreamDirection dir, std::string_view m) {
  const uint16_t flags = Be16(m, 2);
  const bool qr = (flags & 0x8000) != 0;
  const unsigned opcode = (flags >> 11) & 0xf;
  if (qr != (dir == flow::StreamDirection::kResponse)) return false;
  if ((flags & 0x0200) != 0) return false;  // TC: never set over TCP
  if (opcode == 3 || opcode > 5) return false;
  if (!qr && (Be16(m, 6) != 0 || Be16(m, 8) != 0 || Be16(m, 10) > 1)) return false;
  if (!qr && (flags & 0x000f) != 0) return false;  // a query has no RCODE
  // The question name: labels of 1..63 bytes, then QTYPE != 0 and a known QCLASS.
  size_t pos = kHeaderBytes;
  for (int labels = 0; labels < 128; ++labels) {
    if (pos >= m.size()) return false;
    const uint8_t l = static_cast<uint8_t>(m[pos]);
    if (l == 0) break;
    if (l > 63) return false;
    pos += 1 + l;
  }
  if (pos + 5 > m.size()) return false;
  const uint16_t qtype = Be16(m, pos + 1), qclass = Be16(m, pos + 3);
  return qtype != 0 && (qclass == 1 || qclass == 3 || qclass == 4 || qclass == 254 || qclass == 255);
}

}  // namespace

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo& conn) {
  Frame f;
  if (conn.tuple.protocol == net::IpProtocol::kUdp) {
    // A query travels client -> server: when the flow's roles were guessed the other way round
    // (the client's port is the lower one), the analyzer retries with the roles swapped.
    if (!ParseMessage(data, &f, /*with_text=*/false)) return InferResult::kNo;
    return f.is_response == (dir == flow::StreamDirection::kResponse) ? InferResult::kYes : InferResult::kNo;
  }
  if (data.size() < 2 + kHeaderBytes) return InferResult::kMaybe;
  const uint16_t len = Be16(data, 0);
  if (len < kHeaderBytes + 5 || Be16(data, 6) != 1) return InferResult::kNo;
  if (data.size() >= 2u + len && !PlausibleTcpMessage(dir, data.substr(2, len))) {
    return InferResult::kNo;
  }
  if (data.size() < 2u + len) return len < 4096 ? InferResult::kMaybe : InferResult::kNo;
  return ParseMessage(data.substr(2, len), &f, /*with_text=*/false) ? InferResult::kYes
                                                                      : InferResult::kNo;
}

}  // namespace sonde::agent::protocols::dns
