// Tokenizer for Sonde SQL: identifiers (plain or `quoted`), numbers, 'strings', operators.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace sonde::server::query {

enum class TokenKind : uint8_t {
  kIdentifier,        // name or keyword; text as written
  kQuotedIdentifier,  // `name`; text unescaped
  kNumber,
  kString,            // text unescaped
  kOperator,          // = != <> < <= > >= + - * / % ( ) , . ;
  kEnd,
};

struct Token {
  TokenKind kind;
  std::string text;
  size_t pos;  // byte offset in the query
  size_t end = 0;  // byte offset just past the token
};

// Splits `sql` into tokens ending with one kEnd token. Errors carry the position (see
// FormatPositionError).
[[nodiscard]] StatusOr<std::vector<Token>> Tokenize(std::string_view sql);

// "line L:C: message" followed by the offending line and a caret under column C.
std::string FormatPositionError(std::string_view sql, size_t pos, std::string_view message);

}  // namespace sonde::server::query
