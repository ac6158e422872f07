# SegpoolPackage.cmake - what `cmake --install` writes so that other builds
# find libsegpool: segpool.pc for pkg-config and segpoolConfig.cmake for
# find_package(segpool).  Included by the top CMakeLists.txt after the targets.
#
# Both are relocatable: paths are relative to the file's own place
# (${pcfiledir} for pkg-config, PACKAGE_PREFIX_DIR for CMake), so the install
# prefix is the one given to `cmake --install --prefix`, or wherever the
# installed tree is moved or packaged (DESTDIR) afterwards.
include(CMakePackageConfigHelpers)

set(SEGPOOL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/segpool)
set(SEGPOOL_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# segpool.pc: ${prefix} is the path from the .pc file's directory back up to
# the prefix ("../.." for lib/pkgconfig, "../../.." for
# lib/x86_64-linux-gnu/pkgconfig).  A directory given as an absolute path
# (-DCMAKE_INSTALL_LIBDIR=/opt/lib) stays absolute.
function(segpool_pc_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
if(IS_ABSOLUTE "${SEGPOOL_PKGCONFIG_DIR}")
  set(SEGPOOL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH SEGPOOL_PC_UP "/prefix/${SEGPOOL_PKGCONFIG_DIR}" "/prefix")
  string(REGEX REPLACE "/$" "" SEGPOOL_PC_UP "${SEGPOOL_PC_UP}")
  set(SEGPOOL_PC_PREFIX "\${pcfiledir}/${SEGPOOL_PC_UP}")
endif()
segpool_pc_dir(SEGPOOL_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
segpool_pc_dir(SEGPOOL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
configure_file(${PROJECT_SOURCE_DIR}/pool/segpool.pc.in ${PROJECT_BINARY_DIR}/segpool.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/segpool.pc DESTINATION ${SEGPOOL_PKGCONFIG_DIR})

# segpoolConfig.cmake: the exported targets (segpool::segpool,
# segpool::segpool_static, segpool::segshim) and SEGPOOL_SHIM_LIBRARY.
install(EXPORT segpoolTargets NAMESPACE segpool:: DESTINATION ${SEGPOOL_CMAKE_DIR})
if(TARGET segshim)
  set(SEGPOOL_HAVE_SHIM 1)
else()
  set(SEGPOOL_HAVE_SHIM 0)               # sanitizer builds have no shim
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/segpoolConfig.cmake.in
  ${PROJECT_BINARY_DIR}/segpoolConfig.cmake
  INSTALL_DESTINATION ${SEGPOOL_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_LIBEXECDIR)
# 0.x: a minor release may change the interface, so only the same minor
# version satisfies find_package(segpool 0.2).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/segpoolConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/segpoolConfig.cmake ${PROJECT_BINARY_DIR}/segpoolConfigVersion.cmake
  DESTINATION ${SEGPOOL_CMAKE_DIR})
