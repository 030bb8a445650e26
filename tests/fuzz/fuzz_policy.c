/*  Fuzz target: the policy decision for any decodable message, from each
 *  role, with referenced records that exist (a consent, a signal) or not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_policy.h"

static soffa_msg_t *s_ref;   /* the record every lookup finds, when it does */
static soffa_terms_t *s_terms;   /* the built-in sensitive-term list */

static soffa_err_t
s_find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out)
{
    (void) id;
    const uint8_t *mode = ctx;
    memset(out, 0, sizeof *out);
    if (!s_ref || (*mode & 1) || kind == 'W')
        return SOFFA_ERR_NOT_FOUND;
    uint8_t *buf;
    size_t len;
    if (soffa_msg_encode(s_ref, &buf, &len) != SOFFA_OK)
        return SOFFA_ERR_NOMEM;
    soffa_err_t rc = soffa_msg_decode(buf, len, &out->msg);
    free(buf);
    if (rc != SOFFA_OK)
        return rc;
    soffa_msg_view(out->msg, &out->view);
    out->seq = 7;
    strcpy(out->sender, "kaa-1419");
    out->sender_role = SOFFA_ROLE_KAA;
    strcpy(out->sender_kommun, "1419");
    strcpy(out->mailbox, (*mode & 2) ? "kaa-journal/1419" : "kaa/1419");
    return SOFFA_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_ref) {
        const char *consent =
            "{\"message_id\":\"01a20876-2463-70ac-bac8-414ce147632a\",\"schema_version\":\"1.0\","
            "\"occurred_at_us\":1795000000000000,\"sent_at_us\":1795000000000000,"
            "\"subject\":{\"id_type\":\"PNR\",\"id\":\"200803142710\",\"hemkommun\":\"1419\"},"
            "\"legal_basis\":\"CONSENT_OSL_12_2\",\"consent_id\":\"01a20876-2463-70ac-bac8-414ce1476300\","
            "\"correlation_id\":\"01a20876-2463-70ac-bac8-414ce1476301\",\"consent_recorded\":{"
            "\"consent_id\":\"01a20876-2463-70ac-bac8-414ce1476300\",\"granted_by\":[{\"role\":\"YOUTH\"}],"
            "\"youth_age_at_grant\":18,\"scope\":{\"recipients\":[\"ARBETSFORMEDLINGEN\",\"KAA\"],"
            "\"purposes\":[\"REFERRAL\",\"STATUS_FEEDBACK\"],\"data_categories\":[\"IDENTITY\",\"CONTACT\"]},"
            "\"form\":\"WRITTEN\",\"valid_from\":\"2000-01-01\",\"valid_to\":\"2000-12-31\",\"recorded_by\":\"h\"}}";
        soffa_msg_from_json(consent, &s_ref, NULL, 0);
        soffa_terms_new(&s_terms, NULL, NULL, 0);
    }
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(data + 1, size - 1, &m) != SOFFA_OK)
        return 0;
    static const soffa_identity_t ids[] = {
        {.name = "school-1415", .role = SOFFA_ROLE_SCHOOL, .kommun = "1415", .unit = "14150001",
         .units = {"14150001", "14150002"}, .n_units = 2, .orgnr = "2120001355"},
        {.name = "kaa-1419", .role = SOFFA_ROLE_KAA, .kommun = "1419"},
        {.name = "social-1419", .role = SOFFA_ROLE_SOCIAL, .kommun = "1419"},
        {.name = "af-1419", .role = SOFFA_ROLE_AF, .kommun = "1419"},
        {.name = "audit", .role = SOFFA_ROLE_AUDIT, .scope = "*"},
    };
    soffa_policy_decision_t dec;
    char why[256];
    soffa_date_t today = {2000, 6, 1};
    /* The broker's facts, in either state the mode picks: a case known or
     * not, open or closed, an identity already replaced or not; the term
     * list and date limits the broker passes, or nothing at all. */
    soffa_policy_facts_t facts = {.subject_protected = mode & 0x40, .terms = s_terms, .event_max_days = mode & 0x04 ? 1 : 0,
                                  .kase = {.known = mode & 0x80, .open = mode & 0x20, .same_person = mode & 0x10,
                                           .kommun = "1419", .closed_seq = mode, .failed_attempts = mode & 7,
                                           .channels = mode, .person_has_open = mode & 2},
                                  .old_replaced = mode & 1, .new_replaced = mode & 0x08};
    (void) soffa_policy_decide(&ids[(mode >> 2) % 5], m, today, (mode & 0x21) == 0x21 ? NULL : &facts, s_find, &mode, &dec, why,
                               sizeof why);
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    (void) soffa_policy_deliverable(&v, ids[(mode >> 2) % 5].role, mode & 1 ? "kaa/1480" : "af/1419", today, &facts,
                                    s_find, &mode);
    soffa_msg_destroy(&m);
    return 0;
}
