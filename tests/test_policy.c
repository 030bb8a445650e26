/*  Unit tests for soffa_policy: mailboxes and scopes (the decision rows are
 *  exercised end to end in test_broker). */
#include <criterion/criterion.h>
#include <string.h>

#include "soffa_policy.h"

Test(policy, inboxes_journals_and_scopes)
{
    soffa_identity_t school = {.name = "school-1415", .role = SOFFA_ROLE_SCHOOL, .kommun = "1415"};
    soffa_identity_t kaa = {.name = "kaa-1419", .role = SOFFA_ROLE_KAA, .kommun = "1419"};
    soffa_identity_t audit = {.name = "audit", .role = SOFFA_ROLE_AUDIT, .scope = "*/1419, audit/access"};
    char m[SOFFA_NAME_MAX];
    soffa_policy_inbox(&school, m);
    cr_assert_str_eq(m, "school/school-1415");
    soffa_policy_journal(&school, m);
    cr_assert_str_eq(m, "school-journal/school-1415");
    soffa_policy_inbox(&kaa, m);
    cr_assert_str_eq(m, "kaa/1419");
    soffa_policy_journal(&kaa, m);
    cr_assert_str_eq(m, "kaa-journal/1419");
    soffa_policy_inbox(&audit, m);
    cr_assert_str_eq(m, "audit/checkpoint", "an auditor's agent reads the signed checkpoints");
    cr_assert(soffa_policy_may_read(&kaa, "kaa/1419"));
    cr_assert_not(soffa_policy_may_read(&kaa, "kaa/1415"));
    cr_assert_not(soffa_policy_may_read(&kaa, "kaa-journal/1419"));
    cr_assert_not(soffa_policy_may_read(&audit, "kaa/1419"));
    cr_assert(soffa_policy_may_replay(&audit, "kaa/1419"));
    cr_assert(soffa_policy_may_replay(&audit, "kaa-journal/1419"));
    cr_assert(soffa_policy_may_replay(&audit, "audit/access"));
    cr_assert_not(soffa_policy_may_replay(&audit, "kaa/1415"));
    cr_assert_not(soffa_policy_may_replay(&audit, "af/14190"));
    cr_assert_not(soffa_policy_may_replay(&kaa, "kaa/1419"), "only auditors replay");
    cr_assert(soffa_policy_needs_lookup(SOFFA_MT_REFERRAL_SENT));
    cr_assert(soffa_policy_needs_lookup(SOFFA_MT_SIGNAL_ACKNOWLEDGED));
    cr_assert_not(soffa_policy_needs_lookup(SOFFA_MT_ABSENCE_REPORTED));
}
