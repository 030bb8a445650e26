/*  soffa_version: what `--version` prints.
 *
 *  The project version comes from CMake's project(), the git revision from
 *  the tree at build time (a header generated into the build directory by
 *  cmake/version.cmake); a build outside git has no revision.
 */
#ifndef SOFFA_VERSION_H
#define SOFFA_VERSION_H

/*  "0.1.0 (git 1a2b3c4)", or "0.1.0" when built outside git. Static. */
const char *soffa_version(void);

/*  Prints "PROGRAM VERSION" as one line on stdout: every soffa program's
 *  answer to --version. */
void soffa_version_print(const char *program);

#endif
