/*  Fuzz target: the sensitive-term filter, on free text as a sender writes
 *  it (every message with a note or summary passes through it at the
 *  broker) and on a term list as an operator writes it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_terms.h"

static soffa_terms_t *s_builtin;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_builtin && soffa_terms_new(&s_builtin, NULL, NULL, 0) != SOFFA_OK)
        abort();
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint32_t mask;
    int first;
    if (soffa_terms_scan(s_builtin, s, &mask, &first) == SOFFA_OK) {
        /* The first category is one of those named, and only then. */
        if ((mask == 0) != (first < 0) || (first >= 0 && !(mask & (UINT32_C(1) << first))))
            abort();
        char why[256];
        soffa_err_t rc = soffa_terms_screen(s_builtin, s, "at_risk_notice.note", why, sizeof why);
        if ((rc == SOFFA_OK) != (mask == 0) || (rc != SOFFA_OK && strlen(why) >= sizeof why))
            abort();
    }
    /* The same bytes as a list of one's own. */
    soffa_terms_t *t = NULL;
    char why[300];
    if (soffa_terms_parse(&t, (const char *) data, size, "fuzz", why, sizeof why) == SOFFA_OK) {
        if (soffa_terms_category_count(t) == 0)
            abort();
        (void) soffa_terms_check(t, s, NULL);
        (void) soffa_terms_check(t, "missbruk ADHD-diagnos soc:en", NULL);
    }
    soffa_terms_destroy(&t);
    free(s);
    return 0;
}
