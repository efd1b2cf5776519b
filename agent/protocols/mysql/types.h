// MySQL/MariaDB client/server protocol: one Frame per wire packet; the stitcher walks the
// packets of a response (OK, ERR, result sets, prepare replies) with the request's command.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace sonde::agent::protocols::mysql {

// Command bytes (first payload byte of a request packet with sequence id 0).
enum class Command : uint8_t {
  kSleep = 0x00,
  kQuit = 0x01,
  kInitDb = 0x02,
  kQuery = 0x03,
  kFieldList = 0x04,
  kCreateDb = 0x05,
  kDropDb = 0x06,
  kRefresh = 0x07,
  kShutdown = 0x08,
  kStatistics = 0x09,
  kProcessInfo = 0x0a,
  kConnect = 0x0b,
  kProcessKill = 0x0c,
  kDebug = 0x0d,
  kPing = 0x0e,
  kTime = 0x0f,
  kDelayedInsert = 0x10,
  kChangeUser = 0x11,
  kBinlogDump = 0x12,
  kTableDump = 0x13,
  kConnectOut = 0x14,
  kRegisterSlave = 0x15,
  kStmtPrepare = 0x16,
  kStmtExecute = 0x17,
  kStmtSendLongData = 0x18,
  kStmtClose = 0x19,
  kStmtReset = 0x1a,
  kSetOption = 0x1b,
  kStmtFetch = 0x1c,
  kDaemon = 0x1d,
  kBinlogDumpGtid = 0x1e,
  kResetConnection = 0x1f,
};

inline constexpr size_t kMaxCompressedBuffer = 1u << 20;  // an incomplete compressed packet
inline constexpr size_t kMaxRequestPayloadKept = 4096;  // query text beyond this is cut
inline constexpr size_t kMaxResponsePayloadKept = 600;  // enough for ERR messages
inline constexpr size_t kMaxStatements = 1024;          // prepared statements tracked per connection

struct Frame {
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  size_t frame_bytes = 0;

  uint8_t seq_id = 0;
  uint32_t payload_length = 0;  // the packet's real payload length
  std::string payload;          // its first bytes (capped, see above)
};

// Where the stitcher is in the response to the oldest request.
enum class Phase : uint8_t {
  kIdle,             // no request being answered
  kFirst,            // expecting the first packet of a (next) response
  kColumnDefs,       // column definitions left: remaining
  kColumnsEof,       // classic EOF after column definitions (or the first row if deprecated)
  kRows,             // rows until EOF/OK/ERR
  kPrepareParams,    // prepare: parameter definitions left: remaining
  kPrepareColumns,   // prepare: column definitions left: remaining
  kPrepareEof,       // prepare: a classic EOF after a definition block may follow
  kLogin,            // login: auth exchange until OK/ERR
};

struct State {
  // Learned from the handshake (when the capture saw it).
  std::string server_version;
  std::string user;
  std::string database;
  int deprecate_eof = -1;    // CLIENT_DEPRECATE_EOF negotiated: -1 unknown, 0 no, 1 yes
  uint32_t server_capabilities = 0;
  bool encrypted = false;    // the client asked for TLS: everything after is opaque
  // Compressed protocol (CLIENT_COMPRESS), from the handshake or, mid-stream, from the first
  // chunk seen: -1 not yet known, 0 plain, 1 compressed. zbuf holds each direction's incomplete compressed packet.
  int compressed = -1;
  bool compress_negotiated = false;  // CLIENT_COMPRESS on both sides of the handshake
  std::string zbuf[2];
  uint64_t bad_compressed_packets = 0;
  std::map<uint32_t, std::string> statements;  // statement id -> text, from prepare replies

  // Response in progress (for the oldest request).
  Phase phase = Phase::kIdle;
  uint64_t remaining = 0;       // definitions left in kColumnDefs/kPrepare* phases
  uint64_t prepare_columns = 0; // column definitions after the parameters (prepare)
  uint64_t rows = 0;
  uint64_t affected_rows = 0;
  bool saw_result_set = false;
  uint64_t response_bytes = 0;
  uint64_t last_response_ts_ns = 0;
  uint32_t first_response_seq = 0;
  bool has_response = false;
  int32_t error_code = 0;
  std::string error_message;
  uint32_t prepared_id = 0;
  bool prepared_ok = false;

  uint64_t unpaired_responses = 0;
};

}  // namespace sonde::agent::protocols::mysql
