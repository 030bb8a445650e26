# Installation: programs, man pages, configuration, systemd units, the
# system user, the municipality table, the sensitive-term list and bash
# completion.
#
# Paths follow GNUInstallDirs: with CMAKE_INSTALL_PREFIX=/usr (the Debian
# package) configuration goes to /etc/soffa and units to systemd's own
# directories; with another prefix everything stays under it
# (PREFIX/etc/soffa, PREFIX/lib/systemd/system ...), so a staging install
# (DESTDIR) or a /usr/local install touches nothing of the system's.
include(GNUInstallDirs)

set(SOFFA_CONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/soffa")
set(unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
set(sysusersdir "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d")
set(tmpfilesdir "${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  # The system's own directories (Debian 12: /lib/systemd/system).
  pkg_get_variable(pc_unitdir systemd systemdsystemunitdir)
  pkg_get_variable(pc_sysusersdir systemd sysusersdir)
  pkg_get_variable(pc_tmpfilesdir systemd tmpfilesdir)
  foreach(d unitdir sysusersdir tmpfilesdir)
    if(pc_${d})
      set(${d} "${pc_${d}}")
    endif()
  endforeach()
endif()
# -DSOFFA_SYSTEMD_UNITDIR=... (and the others) override; otherwise they
# follow the prefix at every configure.
foreach(d SYSTEMD_UNITDIR:unitdir SYSUSERSDIR:sysusersdir TMPFILESDIR:tmpfilesdir)
  string(REPLACE ":" ";" d ${d})
  list(GET d 0 name)
  list(GET d 1 value)
  if(NOT DEFINED SOFFA_${name})
    set(SOFFA_${name} "${${value}}")
  endif()
endforeach()

# ---- Man pages: scdoc sources beside what they describe, pages in the build dir ----
find_program(SCDOC scdoc REQUIRED)
set(SOFFA_MAN_DIR ${CMAKE_BINARY_DIR}/man)
file(MAKE_DIRECTORY ${SOFFA_MAN_DIR})
set(SOFFA_MAN_PAGES)
foreach(src agents/soffa.1 bench/soffa-bench.1 broker/soffa-broker.8 agents/soffa-agent.8
            agents/soffa-web.8 config/soffa-broker.ini.5 config/soffa-agent.ini.5)
  get_filename_component(page ${src} NAME)
  add_custom_command(
    OUTPUT ${SOFFA_MAN_DIR}/${page}
    COMMAND ${SCDOC} < ${CMAKE_SOURCE_DIR}/${src}.scd > ${SOFFA_MAN_DIR}/${page}
    DEPENDS ${CMAKE_SOURCE_DIR}/${src}.scd
    COMMENT "scdoc ${page}")
  list(APPEND SOFFA_MAN_PAGES ${SOFFA_MAN_DIR}/${page})
  string(REGEX MATCH "[0-9]$" section ${page})
  install(FILES ${SOFFA_MAN_DIR}/${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(soffa_man ALL DEPENDS ${SOFFA_MAN_PAGES})

# ---- Units, with the installed paths ----
set(SOFFA_UNITS_DIR ${CMAKE_BINARY_DIR}/units)
configure_file(broker/soffa-broker.service.in ${SOFFA_UNITS_DIR}/soffa-broker.service @ONLY)
configure_file(agents/soffa-agent@.service.in ${SOFFA_UNITS_DIR}/soffa-agent@.service @ONLY)

# ---- What goes where ----
install(TARGETS soffa_cli soffa_broker soffa_agentd soffa_web soffa_bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES config/broker.ini DESTINATION ${SOFFA_CONFDIR})
install(FILES config/agent.ini DESTINATION ${SOFFA_CONFDIR} RENAME agent.ini.example)
install(FILES ${SOFFA_UNITS_DIR}/soffa-broker.service ${SOFFA_UNITS_DIR}/soffa-agent@.service
        DESTINATION ${SOFFA_SYSTEMD_UNITDIR})
install(FILES config/soffa.sysusers DESTINATION ${SOFFA_SYSUSERSDIR} RENAME soffa.conf)
install(FILES config/soffa.tmpfiles DESTINATION ${SOFFA_TMPFILESDIR} RENAME soffa.conf)
install(FILES config/kommuner.csv config/sensitive-terms.txt DESTINATION ${CMAKE_INSTALL_DATADIR}/soffa)
install(FILES agents/soffa.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME soffa)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
