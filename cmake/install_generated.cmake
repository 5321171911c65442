# cmake/install_generated.cmake: run by `cmake --install` after the plain install() rules.
# Writes the files that name install paths: the example vigil.yaml (store, rule pack) and
# the systemd unit (vigild, its config, the store), and installs the sysusers.d file. The paths come from the prefix given at install
# time (`--prefix P`, else CMAKE_INSTALL_PREFIX), so an install into a temporary prefix is
# as coherent as one into /usr. file(INSTALL) applies DESTDIR and records the manifest.
#
# The VG_* variables are set by the install(CODE) rule in the top CMakeLists.txt:
# GNUInstallDirs' relative (or packager-given absolute) directories.

# out = dir made absolute against the install prefix. GNUInstallDirs' rule for a /usr
# install: configuration in /etc and state in /var, not /usr/etc and /usr/var.
function(vg_abs out dir)
    if(IS_ABSOLUTE "${dir}")
        set(${out} "${dir}" PARENT_SCOPE)
    elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND dir MATCHES "^(etc|var)$")
        set(${out} "/${dir}" PARENT_SCOPE)
    else()
        set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
    endif()
endfunction()

vg_abs(vg_bindir "${VG_BINDIR}")
vg_abs(vg_sysconfdir "${VG_SYSCONFDIR}")
vg_abs(vg_localstatedir "${VG_LOCALSTATEDIR}")
vg_abs(vg_datadir "${VG_DATADIR}")
vg_abs(vg_docdir "${VG_DOCDIR}")
set(vg_confdir "${vg_sysconfdir}/vigil")
set(vg_config "${vg_confdir}/vigil.yaml")
set(vg_store "${vg_localstatedir}/lib/vigil")
# One scratch directory per destination: concurrent installs of one build (tests) do not
# write each other's files.
string(MD5 vg_dest "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(vg_gen "${VG_BINARY_DIR}/install-generated/${vg_dest}")
file(MAKE_DIRECTORY "${vg_gen}")

# Replaces the one line of text that holds `from`, failing loudly if the example changed
# under us (a silent no-op would install a config pointing at the wrong place).
function(vg_replace var from to)
    string(FIND "${${var}}" "${from}" at)
    if(at LESS 0)
        message(FATAL_ERROR "etc/vigil.yaml no longer contains '${from}': update ${CMAKE_CURRENT_LIST_FILE}")
    endif()
    string(REPLACE "${from}" "${to}" v "${${var}}")
    set(${var} "${v}" PARENT_SCOPE)
endfunction()

# The example config, pointing at this install: the store under localstatedir, the rule
# pack under datadir; the TLS files stay pki/*.pem next to it (`vigil pki init`).
file(READ "${VG_SOURCE_DIR}/etc/vigil.yaml" vg_yaml)
vg_replace(vg_yaml "  path: /var/lib/vigil " "  path: ${vg_store} ")
vg_replace(vg_yaml "  paths: [ rules ] " "  paths: [ ${vg_datadir}/vigil/rules ] ")
file(WRITE "${vg_gen}/vigil.yaml" "${vg_yaml}")

# share/doc/vigil/vigil.yaml always; etc/vigil/vigil.yaml only when there is none, so a
# reinstall never overwrites the configuration in use.
file(INSTALL "${vg_gen}/vigil.yaml" DESTINATION "${vg_docdir}")
if(EXISTS "$ENV{DESTDIR}${vg_config}")
    message(STATUS "Keeping: $ENV{DESTDIR}${vg_config} (the example is ${vg_docdir}/vigil.yaml)")
else()
    file(INSTALL "${vg_gen}/vigil.yaml" DESTINATION "${vg_confdir}")
endif()

# The systemd unit and the user it runs as.
vg_abs(vg_unitdir "${VG_SYSTEMD_UNITDIR}")
vg_abs(vg_sysusersdir "${VG_SYSUSERSDIR}")
set(VG_BINDIR "${vg_bindir}")
set(VG_CONFIG "${vg_config}")
set(VG_STORE "${vg_store}")
file(READ "${VG_SOURCE_DIR}/etc/systemd/vigild.service.in" vg_unit)
string(CONFIGURE "${vg_unit}" vg_unit @ONLY)
file(WRITE "${vg_gen}/vigild.service" "${vg_unit}")
file(INSTALL "${vg_gen}/vigild.service" DESTINATION "${vg_unitdir}")
file(INSTALL "${VG_SOURCE_DIR}/etc/systemd/vigil.sysusers" DESTINATION "${vg_sysusersdir}"
     RENAME vigil.conf)

# The store's directory, empty: a prefix without var/lib still runs its example config.
# Under systemd, StateDirectory=vigil hands it to the vigil user at start.
if(NOT EXISTS "$ENV{DESTDIR}${vg_store}")
    message(STATUS "Creating: $ENV{DESTDIR}${vg_store}")
    file(MAKE_DIRECTORY "$ENV{DESTDIR}${vg_store}")
endif()
