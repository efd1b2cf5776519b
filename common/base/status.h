// Status and StatusOr<T>: errors as values for the data path (no exceptions there).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/base/check.h"

namespace sonde {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kOutOfRange,
  kResourceExhausted,  // bounded buffer full: the caller should push back or retry later
  kUnavailable,        // a dependency (ClickHouse, the server) cannot be reached right now
  kDataLoss,           // corrupt or truncated input
  kPermissionDenied,
  kUnauthenticated,
  kUnimplemented,
  kDeadlineExceeded,
  kInternal,
  kCancelled,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;

  // Explicitly discards a status where ignoring it is the right thing to do.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status PermissionDeniedError(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status UnauthenticatedError(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status UnimplementedError(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status DeadlineExceededError(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status CancelledError(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }

// A value or an error. Accessing the value of an error is a bug in our code (CHECKed).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    SONDE_CHECK(!std::get<Status>(v_).ok());
  }
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  T& value() & {
    SONDE_CHECK(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    SONDE_CHECK(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    SONDE_CHECK(ok());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace sonde

// Returns early from the enclosing function when `expr` yields a non-OK Status.
#define SONDE_RETURN_IF_ERROR(expr)           \
  do {                                        \
    ::sonde::Status sonde_status_ = (expr);   \
    if (!sonde_status_.ok()) return sonde_status_; \
  } while (0)

#define SONDE_CONCAT_INNER(a, b) a##b
#define SONDE_CONCAT(a, b) SONDE_CONCAT_INNER(a, b)
// Declares `lhs` from a StatusOr expression or returns its error.
#define SONDE_ASSIGN_OR_RETURN(lhs, expr)                          \
  auto SONDE_CONCAT(sonde_or_, __LINE__) = (expr);                 \
  if (!SONDE_CONCAT(sonde_or_, __LINE__).ok())                     \
    return SONDE_CONCAT(sonde_or_, __LINE__).status();             \
  lhs = std::move(SONDE_CONCAT(sonde_or_, __LINE__)).value()
