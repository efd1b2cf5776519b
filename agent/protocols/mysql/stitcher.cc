// MySQL stitching: a small state machine per response, fed one packet at a time, so result sets
// of any size are consumed as they arrive without being kept.
#include "agent/protocols/mysql/stitcher.h"

#include <algorithm>
#include <cctype>

#include "agent/protocols/common/record_util.h"
#include "agent/protocols/mysql/parser.h"

namespace sonde::agent::protocols::mysql {
namespace {

using ::sonde::common::v1::ResponseStatus;

constexpr uint32_t kClientConnectWithDb = 0x8;
constexpr uint32_t kClientCompress = 0x20;
constexpr uint32_t kClientProtocol41 = 0x200;
constexpr uint32_t kClientSecureConnection = 0x8000;
constexpr uint32_t kClientPluginAuthLenencData = 0x200000;
constexpr uint32_t kClientDeprecateEof = 0x1000000;
constexpr uint16_t kServerMoreResultsExist = 0x8;
constexpr size_t kMaxTextBytes = 1024;  // stored SQL text, names, messages

// Bounds-checked little-endian reader over a (possibly capped) payload.
class Reader {
 public:
  explicit Reader(std::string_view b, size_t pos = 0) : b_(b), p_(pos) {}
  bool ok() const { return ok_; }
  uint64_t Uint(size_t n) {
    if (!Need(n)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[p_ + i])) << (8 * i);
    p_ += n;
    return v;
  }
  uint64_t LenEnc() {
    const uint64_t first = Uint(1);
    if (first < 0xfb) return first;
    if (first == 0xfc) return Uint(2);
    if (first == 0xfd) return Uint(3);
    if (first == 0xfe) return Uint(8);
    ok_ = false;  // 0xfb (NULL) or 0xff are not lengths
    return 0;
  }
  std::string_view NulStr() {
    size_t e = b_.find('\0', p_);
    if (e == std::string_view::npos) {
      ok_ = false;
      return {};
    }
    std::string_view s = b_.substr(p_, e - p_);
    p_ = e + 1;
    return s;
  }
  std::string_view Bytes(size_t n) {
    if (!Need(n)) return {};
    std::string_view s = b_.substr(p_, n);
    p_ += n;
    return s;
  }
  std::string_view Rest() { return p_ < b_.size() ? b_.substr(p_) : std::string_view(); }
  void Skip(size_t n) { Bytes(n); }

 private:
  bool Need(size_t n) {
    if (!ok_ || b_.size() - p_ < n || p_ > b_.size()) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view b_;
  size_t p_;
  bool ok_ = true;
};

uint8_t Head(const Frame& f) { return f.payload.empty() ? 0 : static_cast<uint8_t>(f.payload[0]); }

std::string Capped(std::string_view s) { return std::string(s.substr(0, kMaxTextBytes)); }

bool IsGreeting(const Frame& f) { return f.seq_id == 0 && Head(f) == 0x0a; }

void ParseGreeting(const Frame& f, State* s) {
  Reader r(f.payload, 1);
  std::string_view version = r.NulStr();
  if (!r.ok()) return;
  // MariaDB prefixes "5.5.5-" so old replication clients accept it; the rest is the real version.
  if (version.substr(0, 6) == "5.5.5-" && version.find("MariaDB") != std::string_view::npos) {
    version.remove_prefix(6);
  }
  s->server_version = Capped(version);
  r.Skip(4 + 8 + 1);
  uint32_t caps = static_cast<uint32_t>(r.Uint(2));
  r.Skip(1 + 2);
  caps |= static_cast<uint32_t>(r.Uint(2)) << 16;
  if (r.ok()) s->server_capabilities = caps;
}

bool IsHandshakeResponse(const Frame& f) {
  if (f.seq_id != 1 || f.payload.size() < 32) return false;
  Reader r(f.payload);
  if (!(r.Uint(4) & kClientProtocol41)) return false;
  // Bytes 9..27 are zero filler (MariaDB reuses 28..31 for its extended capabilities).
  return std::all_of(f.payload.begin() + 9, f.payload.begin() + 28, [](char c) { return c == 0; });
}

void ParseHandshakeResponse(const Frame& f, State* s) {
  Reader r(f.payload);
  const uint32_t caps = static_cast<uint32_t>(r.Uint(4));
  r.Skip(4 + 1 + 23);
  std::string_view user = r.NulStr();
  if (!r.ok()) return;
  s->user = Capped(user);
  if (caps & kClientPluginAuthLenencData) {
    r.Skip(static_cast<size_t>(std::min<uint64_t>(r.LenEnc(), 1 << 16)));
  } else if (caps & kClientSecureConnection) {
    r.Skip(static_cast<size_t>(r.Uint(1)));
  } else {
    r.NulStr();
  }
  if (caps & kClientConnectWithDb) {
    std::string_view db = r.NulStr();
    if (r.ok()) s->database = Capped(db);
  }
  const bool server_knows = s->server_capabilities != 0;
  const bool both = (caps & kClientDeprecateEof) &&
                    (!server_knows || (s->server_capabilities & kClientDeprecateEof));
  s->deprecate_eof = both ? 1 : 0;
  s->compress_negotiated = (caps & kClientCompress) &&
                           (!server_knows || (s->server_capabilities & kClientCompress));
}

void ParseErr(const Frame& f, State* s) {
  Reader r(f.payload, 1);
  s->error_code = static_cast<int32_t>(r.Uint(2));
  std::string_view rest = r.Rest();
  if (!rest.empty() && rest[0] == '#' && rest.size() >= 6) rest.remove_prefix(6);  // SQLSTATE
  s->error_message = Capped(rest);
}

// OK packet (header 0x00 or 0xfe): returns the status flags.
uint16_t ParseOk(const Frame& f, State* s) {
  Reader r(f.payload, 1);
  s->affected_rows += r.LenEnc();
  r.LenEnc();  // last insert id
  const uint16_t status = static_cast<uint16_t>(r.Uint(2));
  return r.ok() ? status : 0;
}

// A classic EOF packet: 0xfe and at most 8 bytes more.
bool IsEof(const Frame& f) { return Head(f) == 0xfe && f.payload_length < 9; }

uint16_t EofStatus(const Frame& f) {
  Reader r(f.payload, 1);
  r.Skip(2);  // warnings
  const uint16_t status = static_cast<uint16_t>(r.Uint(2));
  return r.ok() ? status : 0;
}

enum class Feed : uint8_t { kMore, kDone, kDoneNotConsumed };

Feed EndOfResultSet(uint16_t status, State* s) {
  if (status & kServerMoreResultsExist) {
    s->phase = Phase::kFirst;
    return Feed::kMore;
  }
  return Feed::kDone;
}

// Advances the response state machine by one packet of the response to command `cmd`.
Feed FeedPacket(int cmd, const Frame& f, State* s) {
  const uint8_t h = Head(f);
  switch (s->phase) {
    case Phase::kLogin:
      if (h == 0xff) {
        ParseErr(f, s);
        return Feed::kDone;
      }
      return h == 0x00 ? Feed::kDone : Feed::kMore;  // 0xfe auth switch, 0x01 auth data
    case Phase::kFirst:
      if (h == 0xff) {
        ParseErr(f, s);
        return Feed::kDone;
      }
      if (cmd == static_cast<int>(Command::kStmtPrepare)) {
        if (h != 0x00) return Feed::kDone;
        Reader r(f.payload, 1);
        s->prepared_id = static_cast<uint32_t>(r.Uint(4));
        const uint64_t cols = r.Uint(2), params = r.Uint(2);
        if (!r.ok()) return Feed::kDone;
        s->prepared_ok = true;
        s->prepare_columns = cols;
        if (params > 0) {
          s->phase = Phase::kPrepareParams;
          s->remaining = params;
        } else if (cols > 0) {
          s->phase = Phase::kPrepareColumns;
          s->remaining = cols;
          s->prepare_columns = 0;
        } else {
          return Feed::kDone;
        }
        return Feed::kMore;
      }
      if (h == 0x00 && f.payload_length >= 7) return EndOfResultSet(ParseOk(f, s), s);
      if (cmd == static_cast<int>(Command::kQuery) || cmd == static_cast<int>(Command::kStmtExecute)) {
        if (h == 0xfb) return Feed::kDone;  // LOCAL INFILE request
        Reader r(f.payload);
        const uint64_t columns = r.LenEnc();
        if (!r.ok() || columns == 0) return Feed::kDone;
        s->saw_result_set = true;
        s->phase = Phase::kColumnDefs;
        s->remaining = columns;
        return Feed::kMore;
      }
      if (cmd == static_cast<int>(Command::kFieldList) || cmd == static_cast<int>(Command::kStmtFetch)) {
        s->phase = Phase::kRows;
        return FeedPacket(cmd, f, s);
      }
      return Feed::kDone;  // single-packet responses (OK, EOF, statistics text)
    case Phase::kColumnDefs:
      if (h == 0xff) {
        ParseErr(f, s);
        return Feed::kDone;
      }
      if (--s->remaining == 0) s->phase = s->deprecate_eof == 1 ? Phase::kRows : Phase::kColumnsEof;
      return Feed::kMore;
    case Phase::kColumnsEof:
      // A 5-byte EOF separates definitions from rows; with CLIENT_DEPRECATE_EOF (when we did not
      // see the handshake) the rows or the 0xfe-headed OK terminator come directly.
      s->phase = Phase::kRows;
      if (IsEof(f) && f.payload_length < 7) return Feed::kMore;
      return FeedPacket(cmd, f, s);
    case Phase::kRows:
      if (h == 0xff) {
        ParseErr(f, s);
        return Feed::kDone;
      }
      if (h == 0xfe && f.payload_length < 0xffffff && (f.payload_length < 9 || s->deprecate_eof != 0)) {
        return EndOfResultSet(f.payload_length < 7 ? EofStatus(f) : ParseOk(f, s), s);
      }
      ++s->rows;
      return Feed::kMore;
    case Phase::kPrepareParams:
    case Phase::kPrepareColumns:
      if (IsEof(f)) {  // EOF ending a definition block
        if (s->phase == Phase::kPrepareParams && s->prepare_columns > 0) {
          s->phase = Phase::kPrepareColumns;
          s->remaining = s->prepare_columns;
          s->prepare_columns = 0;
          return Feed::kMore;
        }
        return Feed::kDone;
      }
      if (s->remaining == 0) {
        // Parameters done and no EOF came (deprecated EOF): this is the first column definition.
        if (s->phase != Phase::kPrepareParams || s->prepare_columns == 0) return Feed::kDoneNotConsumed;
        s->phase = Phase::kPrepareColumns;
        s->remaining = s->prepare_columns;
        s->prepare_columns = 0;
      }
      if (--s->remaining > 0) return Feed::kMore;
      if (s->deprecate_eof == 1) {
        if (s->phase == Phase::kPrepareParams && s->prepare_columns > 0) {
          s->phase = Phase::kPrepareColumns;
          s->remaining = s->prepare_columns;
          s->prepare_columns = 0;
          return Feed::kMore;
        }
        return Feed::kDone;
      }
      // Block complete: a classic EOF follows (or, if EOF is deprecated, the next block).
      if (s->phase == Phase::kPrepareColumns || s->prepare_columns == 0) s->phase = Phase::kPrepareEof;
      return Feed::kMore;
    case Phase::kPrepareEof:
      return IsEof(f) ? Feed::kDone : Feed::kDoneNotConsumed;
    case Phase::kIdle:
      return Feed::kDone;
  }
  return Feed::kDone;
}

void ResetResponse(State* s, Phase phase) {
  s->phase = phase;
  s->remaining = 0;
  s->prepare_columns = 0;
  s->rows = 0;
  s->affected_rows = 0;
  s->saw_result_set = false;
  s->response_bytes = 0;
  s->last_response_ts_ns = 0;
  s->first_response_seq = 0;
  s->has_response = false;
  s->error_code = 0;
  s->error_message.clear();
  s->prepared_id = 0;
  s->prepared_ok = false;
}

// Errors the server reports about itself rather than about the request.
ResponseStatus ErrorStatus(int32_t code) {
  switch (code) {
    case 1021: case 1037: case 1038: case 1040: case 1041: case 1053: case 1152: case 1153:
    case 1154: case 1155: case 1156: case 1157: case 1158: case 1159: case 1160: case 1161:
    case 1180: case 1181: case 1205: case 1213: case 1927: case 2006: case 2013:
      return ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR;
    default:
      return ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
  }
}

// ASCII classes (what the C locale the agent runs in gives, without a libc call per byte).
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string FirstKeyword(std::string_view sql) {
  size_t b = 0;
  while (b < sql.size() && (IsSpace(sql[b]) || sql[b] == '(')) ++b;
  size_t e = b;
  while (e < sql.size() && e - b < 32 && IsAlpha(sql[e])) ++e;
  std::string k(sql.substr(b, e - b));
  for (char& c : k) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return k;
}

// The record for `req` from the accumulated response in *s (has_response false: none).
void Emit(const Frame& req, bool login, uint64_t end_ns, bool timed_out, State* s,
          RecordBuffer* out) {
  v1::L7RequestLog& r = out->Add();
  r.set_l7_protocol(Traits::kProtocol);
  r.set_version(s->server_version);
  const uint8_t cmd = login ? 0xff : Head(req);
  r.set_request_type(login ? std::string("LOGIN") : std::string(CommandName(cmd)));
  r.set_request_domain(s->database);
  std::string_view body = req.payload.size() > 1 ? std::string_view(req.payload).substr(1) : "";
  switch (static_cast<Command>(cmd)) {
    case Command::kQuery:
      // CLIENT_QUERY_ATTRIBUTES (MySQL 8): parameter_count 0 and parameter_set_count 1 precede
      // the text. A statement never starts with a NUL byte, so this needs no handshake.
      if (body.size() >= 2 && body[0] == '\0' && body[1] == '\1') body.remove_prefix(2);
      [[fallthrough]];
    case Command::kStmtPrepare:
      r.set_request_resource(Capped(body));
      r.set_endpoint(FirstKeyword(body));
      break;
    case Command::kStmtExecute:
    case Command::kStmtClose:
    case Command::kStmtReset:
    case Command::kStmtSendLongData:
    case Command::kStmtFetch: {
      Reader rd(body);
      const uint32_t id = static_cast<uint32_t>(rd.Uint(4));
      if (rd.ok()) {
        r.set_request_id(id);
        if (auto it = s->statements.find(id); it != s->statements.end()) {
          r.set_request_resource(it->second);
          r.set_endpoint(FirstKeyword(it->second));
        }
      }
      break;
    }
    case Command::kInitDb:
    case Command::kFieldList:
    case Command::kCreateDb:
    case Command::kDropDb:
      r.set_request_resource(Capped(body.substr(0, body.find('\0'))));
      break;
    default:
      if (login) r.set_request_resource(s->user);
      break;
  }
  if (r.endpoint().empty()) r.set_endpoint(r.request_type());
  r.set_request_length(static_cast<int64_t>(req.frame_bytes));
  r.set_req_tcp_seq(req.tcp_seq);
  FillTiming(req.timestamp_ns, end_ns, &r);
  if (s->has_response) {
    r.set_response_length(static_cast<int64_t>(s->response_bytes));
    r.set_resp_tcp_seq(s->first_response_seq);
  } else {
    r.set_response_length(-1);
  }
  if (s->error_code != 0) {
    r.set_response_status(ErrorStatus(s->error_code));
    r.set_response_code(s->error_code);
    r.set_response_exception(s->error_message);
  } else if (timed_out) {
    r.set_response_status(::sonde::common::v1::RESPONSE_STATUS_TIMEOUT);
  } else {
    r.set_response_status(::sonde::common::v1::RESPONSE_STATUS_OK);
    if (s->prepared_ok) {
      r.set_request_id(s->prepared_id);
      r.set_response_result("statement_id=" + std::to_string(s->prepared_id));
    } else if (s->saw_result_set) {
      r.set_response_result("rows=" + std::to_string(s->rows));
    } else if (s->has_response && !login) {
      r.set_response_result("affected_rows=" + std::to_string(s->affected_rows));
    }
  }
}

// Bookkeeping once a response completed without error.
void OnSuccess(const Frame& req, bool login, State* s) {
  if (login) {
    // Negotiated compression starts with the packets after the login's OK (the analyzer
    // stitches after every chunk, so the next chunk is unwrapped).
    if (s->compress_negotiated) {
      s->compressed = 1;
      s->zbuf[0].clear();
      s->zbuf[1].clear();
    }
    return;
  }
  const uint8_t cmd = Head(req);
  if (cmd == static_cast<uint8_t>(Command::kInitDb)) {
    std::string_view body = std::string_view(req.payload).substr(1);
    s->database = Capped(body.substr(0, body.find('\0')));
  } else if (cmd == static_cast<uint8_t>(Command::kStmtPrepare) && s->prepared_ok &&
             (s->statements.size() < kMaxStatements || s->statements.count(s->prepared_id))) {
    s->statements[s->prepared_id] = Capped(std::string_view(req.payload).substr(1));
  }
}

}  // namespace

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out) {
  for (int guard = 0; guard < 1000000; ++guard) {
    if (requests->empty()) {
      // Nothing asked: the greeting, or responses to requests we never saw.
      while (!responses->empty()) {
        if (IsGreeting(responses->front())) {
          ParseGreeting(responses->front(), state);
        } else {
          ++state->unpaired_responses, CountUnpairedResponses(ctx);
        }
        responses->pop_front();
      }
      ResetResponse(state, Phase::kIdle);
      return;
    }
    Frame& req = requests->front();
    bool login = state->phase == Phase::kLogin;
    if (state->phase == Phase::kIdle) {
      if (req.seq_id == 0 && !req.payload.empty()) {
        const auto cmd = static_cast<Command>(Head(req));
        if (cmd == Command::kQuit || cmd == Command::kStmtClose || cmd == Command::kStmtSendLongData) {
          // No response comes for these.
          ResetResponse(state, Phase::kIdle);
          Emit(req, false, req.timestamp_ns, false, state, out);
          if (cmd == Command::kStmtClose && req.payload.size() >= 5) {
            Reader rd(std::string_view(req.payload).substr(1));
            state->statements.erase(static_cast<uint32_t>(rd.Uint(4)));
          }
          requests->pop_front();
          continue;
        }
        ResetResponse(state, Phase::kFirst);
      } else if (IsHandshakeResponse(req) && req.payload_length > 32) {
        ParseHandshakeResponse(req, state);
        ResetResponse(state, Phase::kLogin);
        login = true;
      } else {
        requests->pop_front();  // SSLRequest, auth data, LOCAL INFILE data, continuations
        continue;
      }
    }
    const int cmd = login ? -1 : Head(req);
    bool done = false;
    while (!responses->empty()) {
      Frame& resp = responses->front();
      if (IsGreeting(resp)) {
        ParseGreeting(resp, state);
        responses->pop_front();
        continue;
      }
      if (resp.timestamp_ns < req.timestamp_ns) {  // answers something older we did not see
        ++state->unpaired_responses, CountUnpairedResponses(ctx);
        responses->pop_front();
        continue;
      }
      const Feed f = FeedPacket(cmd, resp, state);
      if (f == Feed::kDoneNotConsumed) {
        done = true;
        break;
      }
      if (!state->has_response) {
        state->has_response = true;
        state->first_response_seq = resp.tcp_seq;
      }
      state->response_bytes += resp.frame_bytes;
      state->last_response_ts_ns = std::max(state->last_response_ts_ns, resp.timestamp_ns);
      responses->pop_front();
      if (f == Feed::kDone) {
        done = true;
        break;
      }
    }
    // A prepare reply whose trailing EOF may never come (deprecated EOF) is complete once the
    // next request was sent or the connection closed.
    if (!done && state->phase == Phase::kPrepareEof && (requests->size() > 1 || ctx.connection_closed)) {
      done = true;
    }
    uint64_t end_ns = state->has_response ? state->last_response_ts_ns : ctx.now_ns;
    if (done) {
      if (state->error_code == 0) OnSuccess(req, login, state);
      Emit(req, login, end_ns, false, state, out);
    } else if (IsTimedOut(req.timestamp_ns, ctx)) {
      Emit(req, login, ctx.now_ns, true, state, out);
    } else {
      return;  // wait for more response packets
    }
    ResetResponse(state, Phase::kIdle);
    requests->pop_front();
  }
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  mysql::Stitch(requests, responses, state, ctx, out);
}

}  // namespace sonde::agent::protocols::mysql
