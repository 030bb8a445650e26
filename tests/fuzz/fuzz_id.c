/*  Fuzz target: identity numbers and the other codes, as typed by people. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_cfg.h"
#include "soffa_id.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char canon[13];
    soffa_id_kind_t kind;
    soffa_date_t today = {2026, 11, 23}, d;
    if (soffa_id_parse(s, &today, canon, &kind) == SOFFA_OK) {
        /* What parses must check, and name a real birth date. */
        if (soffa_id_check(canon, NULL) != SOFFA_OK || soffa_id_birth_date(canon, &d) != SOFFA_OK)
            abort();
    }
    if (soffa_id_parse_any(s, &today, canon, &kind) == SOFFA_OK && kind == SOFFA_ID_RESERVE) {
        /* A reserve number checks, holds its birth date and is never a personnummer. */
        if (soffa_reserve_check(canon, &today) != SOFFA_OK || soffa_reserve_birth_date(canon, &d) != SOFFA_OK
            || soffa_id_check(canon, NULL) == SOFFA_OK)
            abort();
    }
    (void) soffa_reserve_check(s, NULL);
    (void) soffa_id_check(s, NULL);
    (void) soffa_kommun_check(s);
    (void) soffa_orgnr_check(s);
    (void) soffa_skolenhet_check(s);
    (void) soffa_date_parse(s, &d);
    uint64_t bytes;
    int64_t ms;
    (void) soffa_cfg_parse_size(s, &bytes);
    (void) soffa_cfg_parse_duration(s, &ms);
    free(s);
    return 0;
}
