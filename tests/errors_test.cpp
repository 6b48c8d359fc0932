// The library's exception types.
#include "knhk/concurrency/errors.hpp"

#include <gtest/gtest.h>

#include <string>
#include <type_traits>

namespace kc = knhk::concurrency;

static_assert(std::is_base_of_v<std::runtime_error, kc::ConcurrencyError>);
static_assert(std::is_base_of_v<kc::ConcurrencyError, kc::Cancelled>);
static_assert(std::is_base_of_v<kc::ConcurrencyError, kc::ExecutorShutdown>);
static_assert(std::is_base_of_v<kc::ConcurrencyError, kc::NurseryError>);

TEST(Errors, EveryLibraryErrorIsAConcurrencyError) {
  EXPECT_THROW(throw kc::Cancelled(), kc::ConcurrencyError);
  EXPECT_THROW(throw kc::ExecutorShutdown(), kc::ConcurrencyError);
  EXPECT_THROW(throw kc::NurseryError({}), kc::ConcurrencyError);
}

TEST(Errors, NurseryErrorKeepsEveryFailureInOrder) {
  const std::vector<std::exception_ptr> failures = {
      std::make_exception_ptr(std::runtime_error("first")),
      std::make_exception_ptr(std::logic_error("second")),
  };
  const kc::NurseryError error(failures);
  ASSERT_EQ(error.errors().size(), 2U);
  EXPECT_EQ(kc::describe_exception(error.errors()[0]), "first");
  EXPECT_EQ(kc::describe_exception(error.errors()[1]), "second");
}

TEST(Errors, NurseryErrorMessageCountsFailuresAndQuotesTheFirst) {
  const kc::NurseryError error(
      {std::make_exception_ptr(std::runtime_error("disk full")), std::make_exception_ptr(std::runtime_error("other"))});
  const std::string message = error.what();
  EXPECT_NE(message.find("2 child tasks failed"), std::string::npos) << message;
  EXPECT_NE(message.find("disk full"), std::string::npos) << message;
}

TEST(Errors, DescribeExceptionHandlesNonStandardAndNull) {
  EXPECT_EQ(kc::describe_exception(nullptr), "no exception");
  EXPECT_EQ(kc::describe_exception(std::make_exception_ptr(17)), "non-standard exception");
}
