# Shared build helpers: warnings, sanitizer-friendly defaults, and test registration with labels.

set(SONDE_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
if(SONDE_WERROR)
  list(APPEND SONDE_WARNINGS -Werror)
endif()

# sonde_library(name SOURCES ... DEPS ...): a static library with the project's warnings.
function(sonde_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${SONDE_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# sonde_test(name SOURCES ... DEPS ... LABELS unit|clickhouse|bpf|e2e [TIMEOUT s]): a GoogleTest binary
# registered with CTest under the given labels.
function(sonde_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${SONDE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "SONDE_SOURCE_DIR=${PROJECT_SOURCE_DIR};SONDE_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()

# sonde_fuzzer(name SOURCES ... DEPS ...): a libFuzzer target when SONDE_FUZZ is on; otherwise a
# plain binary that replays its seed corpus (so fuzzers always build and their seeds always run).
function(sonde_fuzzer name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  if(SONDE_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/common/testing/fuzz_replay_main.cc)
  endif()
  if(ARG_CORPUS)
    add_test(NAME ${name}_seeds COMMAND ${name} ${ARG_CORPUS})
    set_tests_properties(${name}_seeds PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)
  endif()
endfunction()
