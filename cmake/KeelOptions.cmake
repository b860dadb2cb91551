# Compiler warnings: -Wall -Wextra -Wpedantic everywhere; errors when
# KEEL_WARNINGS_AS_ERRORS is on (the dev, asan, tsan and ci presets).
function(keel_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  # GCC 12 at -O3 reports impossible memcpy overlaps inside libstdc++'s
  # std::string (GCC bug 105329, a known false positive); -Wrestrict has no
  # other use here.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(KEEL_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# SIMD kernels live in their own translation units, named *_avx2.cpp and
# *_avx512.cpp, and only those get ISA flags; the library as a whole stays
# portable and the kernel is chosen at run time (no -march=native).
function(keel_add_simd_kernels target)
  get_target_property(_srcs ${target} SOURCES)
  foreach(_src IN LISTS _srcs)
    if(_src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${_src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma;-mbmi2;-mpopcnt")
    elseif(_src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${_src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mbmi2;-mpopcnt")
    endif()
  endforeach()
endfunction()
