# Warnings for the project's own targets. Third-party headers (GoogleTest, Google Benchmark,
# oneTBB) come from system include paths, so their warnings stay out of our error budget.
add_library(knhk_warnings INTERFACE)

target_compile_options(knhk_warnings INTERFACE
  -Wall -Wextra -Wpedantic
  -Wconversion -Wsign-conversion -Wshadow
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  -Wcast-align -Wformat=2 -Wimplicit-fallthrough -Wundef)

if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(knhk_warnings INTERFACE -Wduplicated-cond -Wlogical-op -Wuseless-cast)
elseif(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(knhk_warnings INTERFACE -Wshadow-all -Wextra-semi -Wcomma)
endif()

if(KNHK_WERROR)
  target_compile_options(knhk_warnings INTERFACE -Werror)
endif()

# Symmetric transfer is a guaranteed tail call in g++ only with sibling-call optimisation and
# without ASan/TSan (include/knhk/concurrency/detail/resume.hpp); our own optimised g++ builds say so.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND KNHK_SANITIZE STREQUAL "")
  target_compile_definitions(knhk_warnings INTERFACE
    $<$<CONFIG:Release,RelWithDebInfo,MinSizeRel>:KNHK_TAIL_CALL_TRANSFER=1>)
endif()

# Applies the project's warnings to one of its own targets (never exported).
function(knhk_set_warnings target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:knhk_warnings>)
endfunction()
