# Run by `cmake --install` (see systemd/CMakeLists.txt): CMAKE_INSTALL_PREFIX is the prefix chosen at
# install time, $ENV{DESTDIR} the staging root (file(INSTALL) adds it to every destination).

# The unit, with ExecStart naming the binary where this install puts it.
file(READ "${egressd_source_dir}/systemd/egressd.service" unit)
string(REPLACE "/usr/local/bin/egressd" "${CMAKE_INSTALL_PREFIX}/bin/egressd" unit "${unit}")
# Staged per prefix and DESTDIR, so that installs to different places can run at the same time.
string(MD5 staging "${CMAKE_INSTALL_PREFIX}|$ENV{DESTDIR}")
set(staged_unit "${egressd_staging_dir}/staging-${staging}/egressd.service")
file(WRITE "${staged_unit}" "${unit}")
if(IS_ABSOLUTE "${egressd_unit_dir}")
  set(unit_dir "${egressd_unit_dir}")
else()
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/${egressd_unit_dir}")
endif()
file(INSTALL "${staged_unit}" DESTINATION "${unit_dir}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
get_filename_component(staging_dir "${staged_unit}" DIRECTORY)
file(REMOVE_RECURSE "${staging_dir}")

# The settings and the policy are the administrator's once installed: an existing file is kept.
foreach(entry "egressd.yaml|systemd/egressd.yaml" "policy.yaml|policies/example.yaml")
  string(REPLACE "|" ";" entry "${entry}")
  list(GET entry 0 name)
  list(GET entry 1 source)
  set(target "$ENV{DESTDIR}/etc/egressd/${name}")
  if(EXISTS "${target}" OR IS_SYMLINK "${target}")
    message(STATUS "Keeping: ${target} (already there; the shipped one is ${egressd_source_dir}/${source})")
  else()
    file(INSTALL "${egressd_source_dir}/${source}" DESTINATION "/etc/egressd" RENAME "${name}"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endforeach()
