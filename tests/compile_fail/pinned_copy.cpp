// Compiled twice by the tests (tests/CMakeLists.txt): as it is it must compile; with
// KNHK_COPY_PINNED defined it must not, because copying a Pinned is what pinning forbids.
#include <utility>

#include "knhk/concurrency/pin.hpp"

int main() {
  knhk::concurrency::Pinned<int> original = knhk::concurrency::pin(1);
#ifdef KNHK_COPY_PINNED
  knhk::concurrency::Pinned<int> copy = original;  // error: Pinned's copy constructor is deleted
#else
  knhk::concurrency::Pinned<int> copy = std::move(original);
#endif
  return *copy == 1 ? 0 : 1;
}
