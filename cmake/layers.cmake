# One static library per folder of src/, named pgfailover_<folder>, and the rule that keeps the
# folders' dependency graph what CMakeLists.txt declares.
#
# All headers are included as "<folder>/<file>.h". A folder's library does not put src/ on the
# include path: it puts <build>/layers/<folder>/, which holds one symbolic link, <folder> ->
# src/<folder>. A target therefore finds the headers of its own folder and of the libraries it
# links (and of what their headers include, PUBLIC), and nothing else: "runtime/tick_loop.h"
# from src/core is "No such file or directory".
#
# The include path cannot stop what a PUBLIC dependency's headers expose (cli sees pg through
# runtime's headers), nor a path that climbs out ("../runtime/x.h"). So before a folder's
# sources compile, check_layer_includes.cmake reads every #include of the folder and refuses one
# outside the declared edges: a header may use its folder and the PUBLIC dependencies, a .cc
# also the PRIVATE ones.

set(PGFAILOVER_LAYERS "")
set(PGFAILOVER_LAYER_FOLDERS "")

# pgfailover_layer(<folder> [PUBLIC <folder>...] [PRIVATE <folder>...])
function(pgfailover_layer folder)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "PUBLIC;PRIVATE")
  set(target pgfailover_${folder})
  set(dir ${PROJECT_SOURCE_DIR}/src/${folder})
  file(GLOB sources CONFIGURE_DEPENDS ${dir}/*.cc)
  file(GLOB headers CONFIGURE_DEPENDS ${dir}/*.h)
  if(NOT sources)
    message(FATAL_ERROR "src/${folder} has no .cc file: a layer needs at least one")
  endif()

  set(view ${PROJECT_BINARY_DIR}/layers/${folder})
  file(MAKE_DIRECTORY ${view})
  file(CREATE_LINK ${dir} ${view}/${folder} SYMBOLIC)

  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC ${view})
  foreach(scope PUBLIC PRIVATE)
    foreach(dep IN LISTS arg_${scope})
      target_link_libraries(${target} ${scope} pgfailover_${dep})
    endforeach()
  endforeach()

  list(JOIN arg_PUBLIC "," public)
  list(JOIN arg_PRIVATE "," private)
  set(stamp ${PROJECT_BINARY_DIR}/layers/${folder}.checked)
  add_custom_command(OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} -DFOLDER=${folder} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DPUBLIC=${public} -DPRIVATE=${private} -DSTAMP=${stamp}
      -P ${PROJECT_SOURCE_DIR}/cmake/check_layer_includes.cmake
    DEPENDS ${sources} ${headers} ${PROJECT_SOURCE_DIR}/cmake/check_layer_includes.cmake
    COMMENT "Checking the includes of src/${folder}"
    VERBATIM)
  add_custom_target(${target}_includes DEPENDS ${stamp})
  add_dependencies(${target} ${target}_includes)

  # For the probe test (tests/layering): every folder this target may include, per the table.
  set_property(GLOBAL PROPERTY pgfailover_layer_${folder}_public "${arg_PUBLIC}")
  set_property(GLOBAL PROPERTY pgfailover_layer_${folder}_private "${arg_PRIVATE}")
  set(PGFAILOVER_LAYERS ${PGFAILOVER_LAYERS} ${target} PARENT_SCOPE)
  set(PGFAILOVER_LAYER_FOLDERS ${PGFAILOVER_LAYER_FOLDERS} ${folder} PARENT_SCOPE)
endfunction()

# Every folder of src/ must be a layer: a new folder without a line in CMakeLists.txt would
# otherwise build nowhere.
function(pgfailover_check_layers)
  file(GLOB entries LIST_DIRECTORIES true CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*)
  foreach(entry IN LISTS entries)
    if(IS_DIRECTORY ${entry})
      get_filename_component(folder ${entry} NAME)
      if(NOT folder IN_LIST PGFAILOVER_LAYER_FOLDERS)
        message(FATAL_ERROR "src/${folder} is not a layer: add pgfailover_layer(${folder} ...) "
          "with its dependencies to CMakeLists.txt")
      endif()
    endif()
  endforeach()
endfunction()

# The tests of the rule (tests/layering/): the include paths as the compiler sees them, and the
# include check on a made-up tree with forbidden includes. Label unit: they run with the unit
# tests.
function(pgfailover_add_layer_tests)
  set(table "")
  foreach(folder IN LISTS PGFAILOVER_LAYER_FOLDERS)
    get_property(public GLOBAL PROPERTY pgfailover_layer_${folder}_public)
    get_property(private GLOBAL PROPERTY pgfailover_layer_${folder}_private)
    string(APPEND table
      "set(layer_${folder}_public \"${public}\")\n"
      "set(layer_${folder}_private \"${private}\")\n"
      "set(layer_${folder}_includes \"$<TARGET_PROPERTY:pgfailover_${folder},INCLUDE_DIRECTORIES>\")\n")
  endforeach()
  string(APPEND table "set(layer_folders \"${PGFAILOVER_LAYER_FOLDERS}\")\n"
    "set(compiler \"${CMAKE_CXX_COMPILER}\")\n")
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/layers/table.cmake CONTENT "${table}")
  add_test(NAME Layering.IncludePathShowsOnlyTheAllowedFolders
    COMMAND ${CMAKE_COMMAND} -DTABLE=${PROJECT_BINARY_DIR}/layers/table.cmake
      -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DWORK_DIR=${PROJECT_BINARY_DIR}/layers/probes
      -P ${PROJECT_SOURCE_DIR}/tests/layering/probe_include_paths.cmake)
  add_test(NAME Layering.IncludeCheckRefusesForbiddenIncludes
    COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DWORK_DIR=${PROJECT_BINARY_DIR}/layers/check-probe
      -P ${PROJECT_SOURCE_DIR}/tests/layering/include_check_test.cmake)
  set_tests_properties(Layering.IncludePathShowsOnlyTheAllowedFolders
    Layering.IncludeCheckRefusesForbiddenIncludes PROPERTIES LABELS "unit;layering")
endfunction()
