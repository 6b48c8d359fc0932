# Installs the build at KNHK_BUILD_DIR into a scratch prefix, then builds and runs the consumer
# project against it with find_package(knhk CONFIG REQUIRED). Fails on any step.
set(prefix ${KNHK_WORK_DIR}/prefix)
set(build ${KNHK_WORK_DIR}/build)
file(REMOVE_RECURSE ${KNHK_WORK_DIR})

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

run_step("cmake --install" ${CMAKE_COMMAND} --install ${KNHK_BUILD_DIR} --prefix ${prefix})
run_step("configure consumer" ${CMAKE_COMMAND} -S ${KNHK_CONSUMER_SOURCE} -B ${build}
  -G ${KNHK_GENERATOR} -DCMAKE_CXX_COMPILER=${KNHK_CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_BUILD_TYPE=Release)
run_step("build consumer" ${CMAKE_COMMAND} --build ${build})
run_step("run consumer" ${build}/knhk_consumer)
