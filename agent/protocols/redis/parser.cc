// RESP scanning without building values: we only keep the few strings a record needs.
#include "agent/protocols/redis/parser.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "agent/protocols/common/record_util.h"

namespace sonde::agent::protocols::redis {
namespace {

// The first strings of the top-level aggregate (command and key, or push kind and channel).
struct Collected {
  char type = 0;
  std::string_view line;  // top-level simple value text
  int64_t count = 0;      // top-level aggregate count
  std::string_view items[2];
  int item_count = 0;
  bool items_are_bulk = true;  // every top-level element was a bulk string (requests need this)
};

// True when `s` is a whole decimal int64 (an optional '-', then digits), as std::from_chars
// reads one. Lengths and counts are a few digits: those are read in a plain loop (up to 18
// digits cannot overflow); longer ones go to from_chars.
bool ParseInt(std::string_view s, int64_t* v) {
  if (s.empty()) return false;
  const size_t sign = s[0] == '-' ? 1 : 0;
  const size_t digits = s.size() - sign;
  if (digits >= 1 && digits <= 18) {
    uint64_t x = 0;
    if (!ParseShortDecimal(s.substr(sign), &x)) return false;
    *v = sign != 0 ? -static_cast<int64_t>(x) : static_cast<int64_t>(x);
    return true;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

// Reads a CRLF-terminated line at *pos. kNeedsMoreData if no CRLF yet. RESP lines are short
// (type byte, length, "OK"): a byte loop, which stops kMaxLineBytes in, beats a memchr call.
// Same answers as searching the whole buffer for the first CRLF: a CRLF further on than that
// makes the line too long, as does a buffer that long without one.
ParseState ReadLine(std::string_view buf, size_t* pos, std::string_view* line) {
  const size_t start = *pos;
  const size_t last = buf.size() < 2 ? 0 : std::min(buf.size() - 2, start + kMaxLineBytes);
  for (size_t end = start; end <= last && buf.size() >= 2; ++end) {
    if (buf[end] == '\r' && buf[end + 1] == '\n') {
      *line = buf.substr(start, end - start);
      *pos = end + 2;
      return ParseState::kSuccess;
    }
  }
  return buf.size() - start > kMaxLineBytes ? ParseState::kInvalid : ParseState::kNeedsMoreData;
}

ParseState ScanValue(std::string_view buf, size_t* pos, int depth, Collected* top,
                     std::string_view* as_string);

// A bulk string "$<1 to 18 digits>\r\n<bytes>\r\n" at *pos (nearly every element of a command
// and of many replies) in one pass: the length is read while its line is scanned. False when
// the element has another shape, including a length line not complete yet: ScanValue then
// answers. For the shapes taken here the answers are ScanValue's: the digits hold no CRLF, so
// the line ends where they do, and ParseInt reads them as the loop does.
bool ScanBulk(std::string_view buf, size_t* pos, std::string_view* s, ParseState* st) {
  size_t p = *pos + 1;
  const size_t digits_end = std::min(buf.size(), p + 18);
  uint64_t n = 0;
  const size_t first = p;
  while (p < digits_end) {
    const unsigned d = static_cast<unsigned>(static_cast<unsigned char>(buf[p])) - '0';
    if (d > 9) break;
    n = n * 10 + d;
    ++p;
  }
  if (p == first || buf.size() - p < 2 || buf[p] != '\r' || buf[p + 1] != '\n') return false;
  p += 2;
  if (n > static_cast<uint64_t>(kMaxBulkBytes)) {
    *st = ParseState::kInvalid;
  } else if (buf.size() - p < n + 2) {
    *st = ParseState::kNeedsMoreData;
  } else if (buf[p + n] != '\r' || buf[p + n + 1] != '\n') {
    *st = ParseState::kInvalid;
  } else {
    *s = buf.substr(p, n);
    *pos = p + n + 2;
    *st = ParseState::kSuccess;
  }
  return true;
}

ParseState ScanElements(std::string_view buf, size_t* pos, int depth, int64_t n, Collected* top) {
  for (int64_t i = 0; i < n; ++i) {
    // Each element needs at least 3 bytes; fail fast instead of scanning a hopeless count.
    if (static_cast<int64_t>(buf.size() - *pos) < (n - i) * 3) return ParseState::kNeedsMoreData;
    std::string_view s;
    const char elem_type = *pos < buf.size() ? buf[*pos] : 0;
    ParseState st;
    if (elem_type != '$' || depth + 1 > kMaxDepth || !ScanBulk(buf, pos, &s, &st)) {
      st = ScanValue(buf, pos, depth + 1, top, &s);
    }
    if (st != ParseState::kSuccess) return st;
    if (depth == 0 && top != nullptr) {
      if (elem_type != '$') top->items_are_bulk = false;
      if (top->item_count < 2) top->items[top->item_count++] = s;
    }
  }
  return ParseState::kSuccess;
}

// Scans one RESP value at *pos; *as_string receives simple/bulk string contents.
ParseState ScanValue(std::string_view buf, size_t* pos, int depth, Collected* top,
                     std::string_view* as_string) {
  if (depth > kMaxDepth) return ParseState::kInvalid;
  if (*pos >= buf.size()) return ParseState::kNeedsMoreData;
  const char type = buf[*pos];
  size_t p = *pos + 1;
  std::string_view line;
  ParseState st = ReadLine(buf, &p, &line);
  if (st != ParseState::kSuccess) return st;
  if (depth == 0) {
    top->type = type;
    top->line = line;
  }
  int64_t n = 0;
  switch (type) {
    case '+':
    case '-':
    case '(':
      *as_string = line;
      break;
    case ',':
      if (line.empty()) return ParseState::kInvalid;
      *as_string = line;
      break;
    case ':':
      if (!ParseInt(line, &n)) return ParseState::kInvalid;
      *as_string = line;
      break;
    case '_':
      if (!line.empty()) return ParseState::kInvalid;
      break;
    case '#':
      if (line != "t" && line != "f") return ParseState::kInvalid;
      break;
    case '$':
    case '!':
    case '=': {
      if (!ParseInt(line, &n) || n < -1 || n > kMaxBulkBytes) return ParseState::kInvalid;
      if (n == -1) {
        if (type != '$') return ParseState::kInvalid;
        break;
      }
      if (buf.size() - p < static_cast<size_t>(n) + 2) return ParseState::kNeedsMoreData;
      if (buf[p + n] != '\r' || buf[p + n + 1] != '\n') return ParseState::kInvalid;
      *as_string = buf.substr(p, static_cast<size_t>(n));
      p += static_cast<size_t>(n) + 2;
      break;
    }
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
      if (!ParseInt(line, &n) || n < -1 || n > kMaxAggregate) return ParseState::kInvalid;
      if (n == -1) {
        if (type != '*') return ParseState::kInvalid;
        break;
      }
      if (depth == 0) top->count = n;
      int64_t elems = (type == '%' || type == '|') ? 2 * n : n;
      st = ScanElements(buf, &p, depth, elems, depth == 0 ? top : nullptr);
      if (st != ParseState::kSuccess) return st;
      if (type == '|') {
        // An attribute annotates the value that follows it; that value is the real reply.
        Collected inner;
        std::string_view s;
        st = ScanValue(buf, &p, depth, depth == 0 ? &inner : top, &s);
        if (st != ParseState::kSuccess) return st;
        if (depth == 0) *top = inner;
        *as_string = s;
      }
      break;
    }
    default:
      return ParseState::kInvalid;
  }
  *pos = p;
  return ParseState::kSuccess;
}

std::string Capped(std::string_view s) { return std::string(s.substr(0, kMaxFieldBytes)); }

// Assigns in place: the frame's strings are filled once each, without a temporary.
void AssignCapped(std::string_view s, std::string* out) { out->assign(s.substr(0, kMaxFieldBytes)); }

// ASCII letters (what the C locale the agent runs in gives, without a libc call per byte).
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

void AssignUpper(std::string_view s, std::string* out) {
  AssignCapped(s, out);
  for (char& c : *out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
}

std::string Upper(std::string_view s) {
  std::string r;
  AssignUpper(s, &r);
  return r;
}

bool IsSubscribeCommand(std::string_view cmd) {
  return cmd == "SUBSCRIBE" || cmd == "PSUBSCRIBE" || cmd == "SSUBSCRIBE" ||
         cmd == "UNSUBSCRIBE" || cmd == "PUNSUBSCRIBE" || cmd == "SUNSUBSCRIBE";
}

// Commands whose second word is not a key (or must not be stored, like passwords).
constexpr std::string_view kNoKey[] = {
    "AUTH",   "HELLO",  "PING",     "ECHO",    "SELECT", "INFO",     "CLIENT",  "CONFIG",
    "COMMAND", "MULTI", "EXEC",     "DISCARD", "QUIT",   "FLUSHALL", "FLUSHDB", "DBSIZE",
    "SCRIPT", "EVAL",   "EVALSHA",  "FCALL",   "FUNCTION", "ACL",    "DEBUG",   "SHUTDOWN",
    "SLOWLOG", "MEMORY", "CLUSTER", "LATENCY", "MODULE", "RESET",    "SAVE",    "BGSAVE",
    "LASTSAVE", "TIME", "ROLE",     "MONITOR", "SYNC",   "PSYNC",    "REPLCONF", "WAIT",
    "SCAN",   "RANDOMKEY", "SWAPDB", "XREAD",  "XREADGROUP", "LOLWUT"};
constexpr size_t kMaxNoKeyLength = 10;
// Bit (first letter - 'A') of entry [length]: which (length, first letter) pairs occur in
// kNoKey, so the common commands that take a key (GET, SET, HGET, ...) are told apart without
// a string comparison.
constexpr std::array<uint32_t, kMaxNoKeyLength + 1> kNoKeyShapes = [] {
  std::array<uint32_t, kMaxNoKeyLength + 1> shapes{};
  for (std::string_view k : kNoKey) shapes[k.size()] |= 1u << (k[0] - 'A');
  return shapes;
}();
static_assert([] {
  for (std::string_view k : kNoKey) {
    if (k.empty() || k.size() > kMaxNoKeyLength || k[0] < 'A' || k[0] > 'Z') return false;
  }
  return true;
}());

// `cmd` is upper case.
bool HasNoKey(std::string_view cmd) {
  if (cmd.empty() || cmd.size() > kMaxNoKeyLength || cmd[0] < 'A' || cmd[0] > 'Z' ||
      (kNoKeyShapes[cmd.size()] & (1u << (cmd[0] - 'A'))) == 0) {
    return false;
  }
  for (std::string_view k : kNoKey) {
    if (k.size() == cmd.size() && k[0] == cmd[0] && k == cmd) return true;
  }
  return false;
}

bool IsAlpha(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsAsciiAlpha(c)) return false;
  }
  return true;
}

ParseState ParseRequest(std::string_view buf, size_t* used, Frame* frame) {
  if (buf[0] != '*') {
    // Inline command (telnet style): a line of words. Reject early when the first word is
    // not alphabetic, so binary protocols are not taken for Redis while they accumulate.
    size_t word = 0;
    while (word < buf.size() && buf[word] != ' ' && buf[word] != '\r' && buf[word] != '\n') {
      if (!IsAsciiAlpha(buf[word]) || word >= 32) {
        return ParseState::kInvalid;
      }
      ++word;
    }
    size_t end = buf.find('\n');
    if (end == std::string_view::npos) {
      return buf.size() > kMaxLineBytes ? ParseState::kInvalid : ParseState::kNeedsMoreData;
    }
    std::string_view line = buf.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t sp = line.find(' ');
    std::string_view cmd = line.substr(0, sp);
    if (!IsAlpha(cmd) || cmd.size() > 32) return ParseState::kInvalid;
    AssignUpper(cmd, &frame->command);
    if (sp != std::string_view::npos && !HasNoKey(frame->command)) {
      std::string_view rest = line.substr(sp + 1);
      AssignCapped(rest.substr(0, rest.find(' ')), &frame->key);
    }
    *used = end + 1;
    return ParseState::kSuccess;
  }
  Collected c;
  size_t pos = 0;
  std::string_view s;
  ParseState st = ScanValue(buf, &pos, 0, &c, &s);
  if (st != ParseState::kSuccess) return st;
  if (c.count < 1 || !c.items_are_bulk || !IsAlpha(c.items[0]) || c.items[0].size() > 32) {
    return ParseState::kInvalid;
  }
  AssignUpper(c.items[0], &frame->command);
  if (c.item_count > 1 && !HasNoKey(frame->command)) AssignCapped(c.items[1], &frame->key);
  if (IsSubscribeCommand(frame->command)) {
    frame->expected_confirms = static_cast<uint32_t>(std::max<int64_t>(1, c.count - 1));
  }
  *used = pos;
  return ParseState::kSuccess;
}

ParseState ParseResponse(std::string_view buf, size_t* used, Frame* frame) {
  Collected c;
  size_t pos = 0;
  std::string_view s;
  ParseState st = ScanValue(buf, &pos, 0, &c, &s);
  if (st != ParseState::kSuccess) return st;
  frame->type = c.type;
  switch (c.type) {
    case '-':
      frame->is_error = true;
      AssignCapped(c.line, &frame->error);
      break;
    case '!':
      frame->is_error = true;
      AssignCapped(s, &frame->error);
      break;
    case '+':
    case ':':
    case ',':
    case '(':
    case '#':
      AssignCapped(c.line, &frame->result);
      break;
    case '$':
      if (c.line == "-1") {
        frame->result = "(nil)";
      } else {
        AssignCapped(s, &frame->result);
      }
      break;
    case '_':
      frame->result = "(nil)";
      break;
    default:  // aggregates
      frame->result = c.line == "-1" ? "(nil)" : "(" + std::to_string(c.count) + " elements)";
      break;
  }
  // Pub/sub: pushes are '>' in RESP3 and plain arrays in RESP2, both starting with the kind.
  if ((c.type == '>' || c.type == '*') && c.item_count >= 1 && c.count >= 3) {
    const std::string upper = Upper(c.items[0]);
    const std::string_view kind = upper;  // compared by size first, without a memcmp call each
    if (kind == "MESSAGE" || kind == "PMESSAGE" || kind == "SMESSAGE") {
      frame->kind = ReplyKind::kPush;
      frame->command = kind == "MESSAGE" ? "message" : kind == "PMESSAGE" ? "pmessage" : "smessage";
      if (c.item_count >= 2) frame->push_channel = Capped(c.items[1]);
    } else if (IsSubscribeCommand(kind)) {
      frame->kind = ReplyKind::kConfirm;
      frame->command = kind;
    }
  } else if (c.type == '>') {
    frame->kind = ReplyKind::kPush;  // other RESP3 pushes (e.g. client tracking invalidate)
    frame->command = c.item_count >= 1 ? Capped(c.items[0]) : "push";
  }
  *used = pos;
  return ParseState::kSuccess;
}

bool IsTypeByte(char c) {
  static constexpr std::string_view kTypes = "+-:$*_,#!=(%~>|";
  return kTypes.find(c) != std::string_view::npos;
}

}  // namespace

size_t Traits::FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                 State* /*state*/) {
  for (size_t p = start; p + 1 < buf.size(); ++p) {
    if (p > 0 && buf[p - 1] != '\n') continue;
    if (type == MessageType::kRequest) {
      if (buf[p] == '*' && std::isdigit(static_cast<unsigned char>(buf[p + 1]))) return p;
    } else if (IsTypeByte(buf[p])) {
      return p;
    }
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* /*state*/) {
  if (buf->empty()) return ParseState::kNeedsMoreData;
  size_t used = 0;
  ParseState st = type == MessageType::kResponse ? ParseResponse(*buf, &used, frame)
                                                 : ParseRequest(*buf, &used, frame);
  if (st != ParseState::kSuccess) return st;
  frame->frame_bytes = used;
  buf->remove_prefix(used);
  return ParseState::kSuccess;
}

ParseState Traits::ParseTruncatedFrame(MessageType type, std::string_view* buf, Frame* frame,
                                       State* /*state*/) {
  if (type != MessageType::kResponse || buf->empty() || (*buf)[0] != '$') {
    return ParseState::kInvalid;
  }
  size_t pos = 1;
  std::string_view line;
  int64_t n = 0;
  if (ReadLine(*buf, &pos, &line) != ParseState::kSuccess || !ParseInt(line, &n) || n < 0) {
    return ParseState::kInvalid;
  }
  frame->type = '$';
  frame->result = Capped(buf->substr(pos));
  frame->frame_bytes = buf->size();
  buf->remove_prefix(buf->size());
  return ParseState::kSuccess;
}

}  // namespace sonde::agent::protocols::redis

namespace sonde::agent::protocols::redis {

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  if (data.empty()) return InferResult::kMaybe;
  const bool request = dir == flow::StreamDirection::kRequest;
  // Only the RESP array form of a command is specific enough; inline commands look like text.
  if (request && data[0] != '*') return InferResult::kNo;
  if (!request && std::string_view("*$%>:-+_").find(data[0]) == std::string_view::npos) {
    return InferResult::kNo;
  }
  State state;
  Frame frame;
  std::string_view buf = data;
  switch (Traits::ParseFrame(request ? MessageType::kRequest : MessageType::kResponse, &buf,
                             &frame, &state)) {
    case ParseState::kSuccess:
      // Simple strings ("+OK") are shared with other line protocols: not proof on their own.
      return request || std::string_view("*$%>").find(data[0]) != std::string_view::npos
                 ? InferResult::kYes
                 : InferResult::kMaybe;
    case ParseState::kNeedsMoreData:
      return InferResult::kMaybe;
    default:
      return InferResult::kNo;
  }
}

}  // namespace sonde::agent::protocols::redis
