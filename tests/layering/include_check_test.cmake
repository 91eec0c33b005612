# Layering.IncludeCheckRefusesForbiddenIncludes: cmake/check_layer_includes.cmake on a made-up
# tree must refuse a .cc of core including runtime/, a header exposing a PRIVATE edge, and a
# relative include, and pass the same tree once those are gone.
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE ${WORK_DIR})
file(WRITE ${WORK_DIR}/src/common/log.h "#pragma once\n")
file(WRITE ${WORK_DIR}/src/runtime/loop.h "#pragma once\n")
file(WRITE ${WORK_DIR}/src/pg/connection.h "#pragma once\n")
file(WRITE ${WORK_DIR}/src/core/decide.cc "#include \"core/decide.h\"\n#include <vector>\n")
file(WRITE ${WORK_DIR}/src/core/decide.h "#pragma once\n#include \"common/log.h\"\n")
file(WRITE ${WORK_DIR}/src/guard/guard.cc "#include \"pg/connection.h\"\n")
file(WRITE ${WORK_DIR}/src/guard/guard.h "#pragma once\n")

function(check folder public private expect)
  execute_process(COMMAND ${CMAKE_COMMAND} -DFOLDER=${folder} -DSOURCE_DIR=${WORK_DIR}
      -DPUBLIC=${public} -DPRIVATE=${private}
      -P ${SOURCE_DIR}/cmake/check_layer_includes.cmake
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(expect STREQUAL "pass")
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "src/${folder} should pass the check:\n${out}")
    endif()
  elseif(rc EQUAL 0 OR NOT out MATCHES "${expect}")
    message(FATAL_ERROR "src/${folder} should be refused with \"${expect}\", got (${rc}):\n${out}")
  endif()
endfunction()

check(core common "" pass)
check(guard common pg pass)

file(APPEND ${WORK_DIR}/src/core/decide.cc "#include \"runtime/loop.h\"\n")
check(core common "" "src/core/decide.cc: includes runtime/")
file(WRITE ${WORK_DIR}/src/core/decide.cc "#include \"../runtime/loop.h\"\n")
check(core common "" "src/core/decide.cc: #include \"../runtime/loop.h\"")
file(WRITE ${WORK_DIR}/src/core/decide.cc "#include <runtime/loop.h>\n")
check(core common "" "src/core/decide.cc: includes runtime/")

file(APPEND ${WORK_DIR}/src/guard/guard.h "#include \"pg/connection.h\"\n")
check(guard common pg "src/guard/guard.h: includes pg/")
check(guard "common,pg" "" pass)
message(STATUS "the include check refused every forbidden include")
