# find_package(memshelf CONFIG REQUIRED [COMPONENTS shared static]) for the
# memshelf C ABI (installed by scripts/install-c.sh). Imported targets:
#   memshelf::memshelf  the shared library, libmemshelf.so.1
#   memshelf::static    the static library, libmemshelf.a, with the system
#                       libraries it needs (no libmemshelf.so at run time)
# Both give the include directory (memshelf.h, memshelf.hpp: C++17).
# Components `shared` and `static` require the matching library; without
# COMPONENTS, whichever is installed is defined.
# The package is relocatable: paths are found from this file's location
# (PREFIX/lib/cmake/memshelf/).
if(CMAKE_VERSION VERSION_LESS 3.11)
  set(memshelf_FOUND FALSE)
  set(memshelf_NOT_FOUND_MESSAGE "memshelf needs CMake 3.11 or newer")
  return()
endif()

get_filename_component(_memshelf_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(_memshelf_include "${_memshelf_prefix}/include")
set(_memshelf_so "${_memshelf_prefix}/lib/libmemshelf.so.1")
set(_memshelf_a "${_memshelf_prefix}/lib/libmemshelf.a")

set(memshelf_INCLUDE_DIRS "${_memshelf_include}")
set(memshelf_shared_FOUND FALSE)
set(memshelf_static_FOUND FALSE)

if(EXISTS "${_memshelf_so}")
  set(memshelf_shared_FOUND TRUE)
  if(NOT TARGET memshelf::memshelf)
    add_library(memshelf::memshelf SHARED IMPORTED)
    set_target_properties(memshelf::memshelf PROPERTIES
      IMPORTED_LOCATION "${_memshelf_so}"
      IMPORTED_SONAME "libmemshelf.so.1"
      INTERFACE_INCLUDE_DIRECTORIES "${_memshelf_include}")
  endif()
endif()

if(EXISTS "${_memshelf_a}")
  include(CMakeFindDependencyMacro)
  find_dependency(Threads)
  set(memshelf_static_FOUND TRUE)
  if(NOT TARGET memshelf::static)
    add_library(memshelf::static STATIC IMPORTED)
    # What `rustc --print native-static-libs` lists for the library.
    set_target_properties(memshelf::static PROPERTIES
      IMPORTED_LOCATION "${_memshelf_a}"
      IMPORTED_LINK_INTERFACE_LANGUAGES "C"
      INTERFACE_INCLUDE_DIRECTORIES "${_memshelf_include}"
      INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m;rt;util;gcc_s")
  endif()
endif()

set(memshelf_FOUND TRUE)
foreach(_memshelf_comp IN LISTS memshelf_FIND_COMPONENTS)
  if(NOT _memshelf_comp MATCHES "^(shared|static)$")
    set(memshelf_${_memshelf_comp}_FOUND FALSE)
  endif()
  if(memshelf_FIND_REQUIRED_${_memshelf_comp} AND NOT memshelf_${_memshelf_comp}_FOUND)
    set(memshelf_FOUND FALSE)
    set(memshelf_NOT_FOUND_MESSAGE
      "memshelf component '${_memshelf_comp}' not found under ${_memshelf_prefix} (components: shared, static)")
  endif()
endforeach()
if(NOT memshelf_shared_FOUND AND NOT memshelf_static_FOUND)
  set(memshelf_FOUND FALSE)
  set(memshelf_NOT_FOUND_MESSAGE "neither libmemshelf.so.1 nor libmemshelf.a under ${_memshelf_prefix}/lib")
endif()

unset(_memshelf_comp)
unset(_memshelf_prefix)
unset(_memshelf_include)
unset(_memshelf_so)
unset(_memshelf_a)
