/*  Tests for soffa_err: every code has a name and a sentence of its own. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "soffa_err.h"

Test(err, every_code_has_distinct_name_and_text)
{
    for (int i = 0; i < SOFFA_ERR__COUNT; i++) {
        const char *t = soffa_strerror((soffa_err_t) i);
        cr_assert(t && *t, "code %d has no text", i);
        cr_assert_str_neq(soffa_errname((soffa_err_t) i), "UNKNOWN");
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(t, soffa_strerror((soffa_err_t) j), "codes %d and %d share a text", i, j);
    }
    cr_assert_eq(SOFFA_OK, 0);
}

Test(err, store_full_names_the_setting_to_raise)
{
    cr_assert(strstr(soffa_strerror(SOFFA_ERR_STORE_FULL), "map_size") != NULL);
    cr_assert_str_eq(soffa_errname(SOFFA_ERR_STORE_FULL), "STORE_FULL");
}

Test(err, unknown_code_is_said_so)
{
    cr_assert_str_eq(soffa_strerror((soffa_err_t) 9999), "unknown error code");
    cr_assert_str_eq(soffa_errname((soffa_err_t) -1), "UNKNOWN");
}

Test(err, errno_is_translated)
{
    cr_assert_eq(soffa_err_from_errno(ENOSPC), SOFFA_ERR_DISK_FULL);
    cr_assert(strstr(soffa_strerror(SOFFA_ERR_DISK_FULL), "free space") != NULL);
    cr_assert_eq(soffa_err_from_errno(EACCES), SOFFA_ERR_PERMISSION);
    cr_assert_eq(soffa_err_from_errno(ENOENT), SOFFA_ERR_NOT_FOUND);
    cr_assert_eq(soffa_err_from_errno(EIO), SOFFA_ERR_IO);
    cr_assert_eq(soffa_err_from_errno(0), SOFFA_OK);
}
