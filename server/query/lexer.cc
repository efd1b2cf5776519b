// Hand-written tokenizer for Sonde SQL.
#include "server/query/lexer.h"

#include <algorithm>
#include <cctype>

namespace sonde::server::query {
namespace {

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

constexpr size_t kMaxQueryBytes = 64 * 1024;

}  // namespace

std::string FormatPositionError(std::string_view sql, size_t pos, std::string_view message) {
  pos = std::min(pos, sql.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < pos; ++i) {
    if (sql[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t line_end = sql.find('\n', line_start);
  if (line_end == std::string_view::npos) line_end = sql.size();
  const size_t col = pos - line_start + 1;
  std::string out = "line " + std::to_string(line) + ":" + std::to_string(col) + ": ";
  out += message;
  out += "\n  ";
  // Long lines are cut to a window around the column so messages stay readable.
  constexpr size_t kWindow = 60;
  size_t from = line_start;
  std::string prefix;
  if (pos - line_start > kWindow) {
    from = pos - kWindow;
    prefix = "...";
  }
  const size_t to = std::min(line_end, pos + kWindow);
  std::string excerpt = prefix + std::string(sql.substr(from, to - from));
  if (to < line_end) excerpt += "...";
  const size_t caret_col = prefix.size() + (pos - from) + 1;
  // Tabs would misalign the caret.
  std::replace(excerpt.begin(), excerpt.end(), '\t', ' ');
  out += excerpt;
  out += "\n  ";
  out.append(caret_col - 1, ' ');
  out += '^';
  return out;
}

StatusOr<std::vector<Token>> Tokenize(std::string_view sql) {
  if (sql.size() > kMaxQueryBytes) {
    return InvalidArgumentError("query longer than " + std::to_string(kMaxQueryBytes) + " bytes");
  }
  std::vector<Token> out;
  size_t i = 0;
  const size_t n = sql.size();
  auto error = [&](size_t pos, std::string_view msg) {
    return InvalidArgumentError(FormatPositionError(sql, pos, msg));
  };
  while (i < n) {
    const char c = sql[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    // -- line comments and /* block comments */
    if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      const size_t end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return error(i, "unterminated comment");
      i = end + 2;
      continue;
    }
    const size_t start = i;
    if (IsIdentStart(c)) {
      while (i < n && IsIdentChar(sql[i])) ++i;
      out.push_back({TokenKind::kIdentifier, std::string(sql.substr(start, i - start)), start, i});
      continue;
    }
    if (IsDigit(c) || (c == '.' && i + 1 < n && IsDigit(sql[i + 1]))) {
      while (i < n && IsDigit(sql[i])) ++i;
      if (i < n && sql[i] == '.') {
        ++i;
        while (i < n && IsDigit(sql[i])) ++i;
      }
      if (i < n && (sql[i] == 'e' || sql[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (sql[j] == '+' || sql[j] == '-')) ++j;
        if (j < n && IsDigit(sql[j])) {
          i = j;
          while (i < n && IsDigit(sql[i])) ++i;
        }
      }
      if (i < n && IsIdentChar(sql[i])) return error(i, "malformed number");
      out.push_back({TokenKind::kNumber, std::string(sql.substr(start, i - start)), start, i});
      continue;
    }
    if (c == '\'' || c == '`') {
      const char quote = c;
      std::string text;
      ++i;
      bool closed = false;
      while (i < n) {
        const char d = sql[i];
        if (d == '\\' && i + 1 < n) {
          const char e = sql[i + 1];
          switch (e) {
            case 'n': text += '\n'; break;
            case 't': text += '\t'; break;
            case '0': text += '\0'; break;
            default: text += e; break;
          }
          i += 2;
          continue;
        }
        if (d == quote) {
          if (i + 1 < n && sql[i + 1] == quote) {  // '' inside a string
            text += quote;
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        text += d;
        ++i;
      }
      if (!closed) {
        return error(start, quote == '\'' ? "unterminated string" : "unterminated quoted name");
      }
      if (quote == '`' && text.empty()) return error(start, "empty quoted name");
      out.push_back({quote == '\'' ? TokenKind::kString : TokenKind::kQuotedIdentifier,
                     std::move(text), start, i});
      continue;
    }
    // Two-character operators first.
    if (i + 1 < n) {
      const std::string_view two = sql.substr(i, 2);
      if (two == "!=" || two == "<>" || two == "<=" || two == ">=" || two == "==") {
        out.push_back({TokenKind::kOperator,
                       two == "<>" ? std::string("!=") : two == "==" ? std::string("=")
                                                                     : std::string(two),
                       start, start + 2});
        i += 2;
        continue;
      }
    }
    if (std::string_view("=<>+-*/%(),.;").find(c) != std::string_view::npos) {
      out.push_back({TokenKind::kOperator, std::string(1, c), start, start + 1});
      ++i;
      continue;
    }
    return error(i, std::string("unexpected character '") + c + "'");
  }
  out.push_back({TokenKind::kEnd, "", n, n});
  return out;
}

}  // namespace sonde::server::query
