# Configures the source tree at KNHK_SOURCE_DIR into the scratch directory KNHK_WORK_DIR with
# -DBUILD_TESTING=OFF, as packagers do (the CTest convention), and fails if that was not honoured:
# a warning that BUILD_TESTING went unused, a GoogleTest target, or a CTest test in the result.
# Configure only: building would cost minutes.
cmake_minimum_required(VERSION 3.25)  # the project's minimum, for its policies (IN_LIST)
file(REMOVE_RECURSE ${KNHK_WORK_DIR})
# The file API's code model lists the targets whatever the generator.
file(WRITE ${KNHK_WORK_DIR}/.cmake/api/v1/query/codemodel-v2 "")

execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${KNHK_SOURCE_DIR} -B ${KNHK_WORK_DIR} -G ${KNHK_GENERATOR}
    -DCMAKE_CXX_COMPILER=${KNHK_CXX_COMPILER} -DBUILD_TESTING=OFF
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configure with -DBUILD_TESTING=OFF failed (${rc}):\n${out}\n${err}")
endif()

string(REGEX MATCH "Manually-specified variables were not used by the project:\n\n( +[^\n]*\n)*" unused "${err}")
if(unused MATCHES "BUILD_TESTING")
  message(FATAL_ERROR "BUILD_TESTING was ignored:\n${err}")
endif()

file(GLOB index ${KNHK_WORK_DIR}/.cmake/api/v1/reply/index-*.json)
file(READ "${index}" index_json)
string(JSON codemodel_file GET "${index_json}" reply codemodel-v2 jsonFile)
file(READ ${KNHK_WORK_DIR}/.cmake/api/v1/reply/${codemodel_file} codemodel_json)
string(JSON target_count LENGTH "${codemodel_json}" configurations 0 targets)
set(targets "")
math(EXPR last "${target_count} - 1")
foreach(i RANGE ${last})
  string(JSON name GET "${codemodel_json}" configurations 0 targets ${i} name)
  list(APPEND targets ${name})
endforeach()
if(NOT "knhk_concurrency" IN_LIST targets)
  message(FATAL_ERROR "no knhk_concurrency target; targets: ${targets}")
endif()
foreach(name IN LISTS targets)
  # Every GoogleTest executable is named *_test; the small-queue copy of the library is tests-only.
  if(name MATCHES "_test$" OR name STREQUAL "knhk_concurrency_small_queues")
    message(FATAL_ERROR "test target '${name}' with -DBUILD_TESTING=OFF; targets: ${targets}")
  endif()
endforeach()

execute_process(COMMAND ${KNHK_CTEST_COMMAND} --test-dir ${KNHK_WORK_DIR} -N
  RESULT_VARIABLE rc OUTPUT_VARIABLE tests ERROR_VARIABLE tests_err)
if(NOT tests MATCHES "Total Tests: 0")
  message(FATAL_ERROR "CTest tests with -DBUILD_TESTING=OFF:\n${tests}\n${tests_err}")
endif()
message(STATUS "-DBUILD_TESTING=OFF: no test targets, no tests, no unused-variable warning")
