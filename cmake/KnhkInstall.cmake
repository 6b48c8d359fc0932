# cmake --install: headers, the library, and a CMake package so that
#   find_package(knhk CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE knhk::concurrency)
# works from an outside project.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KNHK_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/knhk)

install(TARGETS knhk_concurrency
  EXPORT knhkTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
# Generated at configure time (the top-level CMakeLists.txt), next to the headers that include it.
install(FILES ${KNHK_GENERATED_INCLUDE_DIR}/knhk/concurrency/detail/build_config.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/knhk/concurrency/detail)

# The telemetry registry the library's metric and span names are declared in (docs/TELEMETRY.md).
install(FILES ${PROJECT_SOURCE_DIR}/registry/concurrency.yaml
  DESTINATION ${CMAKE_INSTALL_DATADIR}/knhk/registry)

install(EXPORT knhkTargets
  NAMESPACE knhk::
  DESTINATION ${KNHK_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/knhkConfig.cmake.in
  ${PROJECT_BINARY_DIR}/knhkConfig.cmake
  INSTALL_DESTINATION ${KNHK_INSTALL_CMAKEDIR})

write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/knhkConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)

install(FILES
  ${PROJECT_BINARY_DIR}/knhkConfig.cmake
  ${PROJECT_BINARY_DIR}/knhkConfigVersion.cmake
  DESTINATION ${KNHK_INSTALL_CMAKEDIR})
