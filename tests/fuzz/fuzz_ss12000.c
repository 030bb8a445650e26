/*  Fuzz target: `soffa import --format ss12000` and `soffa sync`: one page
 *  of an SS 12000 API (persons, organisations or calendar events with
 *  attendance, or a list of pages) read, then the pupils it describes
 *  checked and turned into observations. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "soffa_ss12000.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    soffa_ss12000_t *ss = NULL;
    if (soffa_ss12000_new(&ss) != SOFFA_OK)
        return 0;
    char why[600], *next = NULL;
    soffa_date_t today = {2026, 11, 27};
    if (soffa_ss12000_add(ss, (const char *) data, size, "fuzz.json", SOFFA_SS12000_DETECT, &next, why, sizeof why)
        == SOFFA_OK) {
        json_t *errors = json_array();
        json_decref(soffa_ss12000_pupils(ss, &today, errors));
        json_decref(errors);
    }
    free(next);
    soffa_ss12000_destroy(&ss);
    return 0;
}
