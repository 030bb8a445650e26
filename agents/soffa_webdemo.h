/*  soffa_webdemo: the web inboxes of a local network made by `soffa up`.
 *
 *  Each site that people work at (school, KAA, social services,
 *  Arbetsförmedlingen) gets a [web] section on a free loopback port, one
 *  demo account ("demo", role lead, so that Min enhet shows too) with a
 *  random password, and a soffa-web process. The passwords are written to
 *  DIR/web-passwords (owner-only), never printed.
 */
#ifndef SOFFA_WEBDEMO_H
#define SOFFA_WEBDEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "soffa_err.h"

/*  True for the roles whose sites get a web inbox. */
bool soffa_webdemo_wants(const char *role);

/*  Writes the [web] section of site `name` (port: a free loopback port);
 *  `soffa up` writes it before [agent], so that lines appended to the file
 *  later (as tests do) still land in [agent]. Returns SOFFA_OK, or the
 *  error of soffa_cli_ini_write with why. */
soffa_err_t soffa_webdemo_ini(FILE *agent_ini, const char *name, int port, char *why, size_t whylen);

/*  Makes the demo accounts, starts soffa-web for every site whose
 *  agent.ini has a [web] section, appends "web-NAME PID" lines to DIR/pids
 *  and waits until each listens. Returns 0, or 1 with why. */
int soffa_webdemo_start(const char *dir, const char *bin_dir, const char *const *names, size_t n, char *why, size_t whylen);

/*  Prints the addresses and where the passwords are. */
void soffa_webdemo_print(FILE *out, const char *dir);

#endif
