# Sanitizer builds apply to every target of the build (library, tests, apps), so that all
# code sharing memory with the library is instrumented.
if(KNHK_SANITIZE STREQUAL "address")
  set(_knhk_san_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # clang 14 cannot emit UBSan's function-type check for coroutine frames
    # ("Cannot represent a difference across sections").
    list(APPEND _knhk_san_flags -fno-sanitize=function)
  endif()
elseif(KNHK_SANITIZE STREQUAL "thread")
  set(_knhk_san_flags -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT KNHK_SANITIZE STREQUAL "")
  message(FATAL_ERROR "KNHK_SANITIZE must be empty, 'address' or 'thread' (got '${KNHK_SANITIZE}')")
endif()

if(_knhk_san_flags)
  add_compile_options(${_knhk_san_flags})
  add_link_options(${_knhk_san_flags})
  add_compile_definitions(KNHK_SANITIZED=1)
endif()
