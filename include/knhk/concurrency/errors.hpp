// The exceptions the library throws.
//
// Everything derives from ConcurrencyError, so `catch (const ConcurrencyError&)` sees every
// error of the library and nothing else. Bad arguments are std::invalid_argument and misuse
// that would deadlock is std::logic_error, as in the standard library.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace knhk::concurrency {

/// Base of every error the library throws.
class ConcurrencyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A cancellation-aware wait ended because its token was cancelled.
class Cancelled : public ConcurrencyError {
 public:
  Cancelled() : ConcurrencyError("operation cancelled") {}
  using ConcurrencyError::ConcurrencyError;
};

/// Work was handed to an executor that is shutting down, from outside it.
class ExecutorShutdown : public ConcurrencyError {
 public:
  ExecutorShutdown() : ConcurrencyError("executor is shutting down") {}
  using ConcurrencyError::ConcurrencyError;
};

/// One or more children of a nursery failed. errors() holds every failure in the order they
/// happened; what() says how many failed and repeats the first one's message.
class NurseryError : public ConcurrencyError {
 public:
  explicit NurseryError(std::vector<std::exception_ptr> errors);

  [[nodiscard]] const std::vector<std::exception_ptr>& errors() const noexcept { return errors_; }

 private:
  std::vector<std::exception_ptr> errors_;
};

/// The message of the exception held by `error`: what() for std::exception, a fixed text for
/// anything else, and "no exception" for a null pointer. Never throws.
[[nodiscard]] std::string describe_exception(const std::exception_ptr& error) noexcept;

}  // namespace knhk::concurrency
