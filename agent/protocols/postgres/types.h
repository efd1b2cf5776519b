// PostgreSQL frontend/backend protocol 3.0: one Frame per message. Requests are grouped into
// batches that each end in one ReadyForQuery (Query, Sync) and paired with those responses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace sonde::agent::protocols::postgres {

// Types of untyped frontend messages (they have no type byte on the wire).
inline constexpr char kStartup = '\x01';
inline constexpr char kSslRequest = '\x02';
inline constexpr char kCancelRequest = '\x03';
inline constexpr char kSslAnswer = '\x04';  // the single byte 'S'/'N' the server answers with

inline constexpr size_t kMaxPayloadKept = 4096;
inline constexpr size_t kMaxStatements = 1024;

struct Frame {
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  size_t frame_bytes = 0;

  char type = 0;        // message type byte, or one of the constants above
  std::string payload;  // message body after the length (capped)
};

struct State {
  std::string user;
  std::string database;
  std::string version;                         // "3.0" from the startup message
  // prepared statement name -> query text (transparent: looked up by string_view)
  std::map<std::string, std::string, std::less<>> statements;
  bool ssl_answer_pending = false;
  bool encrypted = false;  // the server accepted SSL: the rest is opaque
  uint64_t unpaired_responses = 0;
};

}  // namespace sonde::agent::protocols::postgres
