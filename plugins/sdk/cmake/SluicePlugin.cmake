# sluice_add_plugin(<name> <sources>...): a loadable plugin module built the way the loader
# expects: a MODULE library linked to sluice::sdk, with hidden visibility (of our code only the
# two SLUICE_PLUGIN entry points are exported; weak symbols from Boost headers may be too) and
# no "lib" prefix.
function(sluice_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE sluice::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()
