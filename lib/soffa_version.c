/*  soffa_version: the version line, from the header made at build time. */
#include "soffa_version.h"

#include <stdio.h>

#include "soffa_version_gen.h"

const char *
soffa_version(void)
{
    return SOFFA_GIT_REVISION[0] ? SOFFA_VERSION_NUMBER " (git " SOFFA_GIT_REVISION ")" : SOFFA_VERSION_NUMBER;
}

void
soffa_version_print(const char *program)
{
#ifdef SOFFA_BENCH_PLAINTEXT
    printf("%s %s, built WITHOUT encryption at rest (SOFFA_BENCH_PLAINTEXT, for soffa-bench only)\n", program,
           soffa_version());
#else
    printf("%s %s\n", program, soffa_version());
#endif
}
