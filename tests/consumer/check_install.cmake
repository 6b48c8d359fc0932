# Installs the build at KNHK_BUILD_DIR into a scratch prefix, then builds and runs the consumer
# project against it with find_package(knhk CONFIG REQUIRED). Fails on any step.
#
# The consumer is built twice: as is, and with AddressSanitizer against the same uninstrumented
# package, which users do. Whether pooled blocks are poisoned must follow the library's build, not
# the consumer's flags (include/knhk/concurrency/detail/block_pool.hpp); otherwise blocks poisoned
# by inline code in the consumer are handed out again by the library without being unpoisoned,
# and the ASan run aborts with a false use-after-poison.
set(prefix ${KNHK_WORK_DIR}/prefix)
file(REMOVE_RECURSE ${KNHK_WORK_DIR})

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

# Configures, builds and runs the consumer in KNHK_WORK_DIR/<name>; ARGN: extra configure options.
function(check_consumer name)
  set(build ${KNHK_WORK_DIR}/${name})
  run_step("configure consumer (${name})" ${CMAKE_COMMAND} -S ${KNHK_CONSUMER_SOURCE} -B ${build}
    -G ${KNHK_GENERATOR} -DCMAKE_CXX_COMPILER=${KNHK_CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_BUILD_TYPE=Release ${ARGN})
  run_step("build consumer (${name})" ${CMAKE_COMMAND} --build ${build})
  run_step("run consumer (${name})" ${build}/knhk_consumer)
endfunction()

run_step("cmake --install" ${CMAKE_COMMAND} --install ${KNHK_BUILD_DIR} --prefix ${prefix})
check_consumer(build)
set(asan_flags "-fsanitize=address -fno-omit-frame-pointer")
check_consumer(build-asan "-DCMAKE_CXX_FLAGS=${asan_flags}" "-DCMAKE_EXE_LINKER_FLAGS=${asan_flags}")
