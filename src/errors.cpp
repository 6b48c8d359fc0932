#include "knhk/concurrency/errors.hpp"

#include <utility>

namespace knhk::concurrency {
namespace {

std::string nursery_message(const std::vector<std::exception_ptr>& errors) {
  std::string message = std::to_string(errors.size());
  message += errors.size() == 1 ? " child task failed" : " child tasks failed";
  if (!errors.empty()) {
    message += "; first: ";
    message += describe_exception(errors.front());
  }
  return message;
}

}  // namespace

NurseryError::NurseryError(std::vector<std::exception_ptr> errors)
    : ConcurrencyError(nursery_message(errors)), errors_(std::move(errors)) {}

std::string describe_exception(const std::exception_ptr& error) noexcept {
  if (!error) return "no exception";
  try {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "non-standard exception";
    }
  } catch (...) {
    // Building the string itself failed (out of memory): say nothing rather than throw.
    return {};
  }
}

}  // namespace knhk::concurrency
