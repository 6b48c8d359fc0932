// knhk concurrency: the umbrella header. Including it gives the whole public API.
#pragma once

#include "knhk/concurrency/address_stable.hpp"    // IWYU pragma: export
#include "knhk/concurrency/cancel_token.hpp"      // IWYU pragma: export
#include "knhk/concurrency/errors.hpp"            // IWYU pragma: export
#include "knhk/concurrency/executor.hpp"          // IWYU pragma: export
#include "knhk/concurrency/join_handle.hpp"       // IWYU pragma: export
#include "knhk/concurrency/memory.hpp"            // IWYU pragma: export
#include "knhk/concurrency/nursery.hpp"           // IWYU pragma: export
#include "knhk/concurrency/pin.hpp"               // IWYU pragma: export
#include "knhk/concurrency/sync_wait.hpp"         // IWYU pragma: export
#include "knhk/concurrency/task.hpp"              // IWYU pragma: export
#include "knhk/concurrency/telemetry.hpp"         // IWYU pragma: export
#include "knhk/concurrency/telemetry_export.hpp"  // IWYU pragma: export
#include "knhk/concurrency/time.hpp"              // IWYU pragma: export
