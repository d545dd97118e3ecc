# The layers of docs/ARCHITECTURE.md as static libraries, one per folder, each seeing only the
# headers the table allows.
#
# sefar_layer(NAME [USES layer...] [SOURCES file...]) makes the library sefar_NAME from the folder
# NAME. Its include root is build/layers/NAME, a folder of links to NAME itself and to the folders of
# the layers it USES, and nothing else: an #include "x/..." of a layer it may not use does not compile
# ("No such file or directory"). The library links the layers it uses, so their code is there too.
function(sefar_layer name)
  cmake_parse_arguments(ARG "" "" "USES;SOURCES" ${ARGN})
  set(root ${PROJECT_BINARY_DIR}/layers/${name})
  file(MAKE_DIRECTORY ${root})
  set(allowed ${name} ${ARG_USES})
  # A link left from an earlier configure with a wider USES list goes (file(REMOVE) removes the link,
  # never what it points to).
  file(GLOB present LIST_DIRECTORIES true ${root}/*)
  foreach(entry ${present})
    get_filename_component(layer ${entry} NAME)
    if(NOT layer IN_LIST allowed)
      file(REMOVE ${entry})
    endif()
  endforeach()
  foreach(layer ${allowed})
    if(NOT EXISTS ${root}/${layer})
      file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${layer} ${root}/${layer} SYMBOLIC)
    endif()
  endforeach()
  add_library(sefar_${name} STATIC ${ARG_SOURCES})
  target_include_directories(sefar_${name} PRIVATE ${root})
  foreach(layer ${ARG_USES})
    target_link_libraries(sefar_${name} PUBLIC sefar_${layer})
  endforeach()
endfunction()
