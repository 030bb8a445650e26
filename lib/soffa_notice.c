/*  soffa_notice: the messages the broker writes itself (see soffa_notice.h). */
#include "soffa_notice.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_uuid.h"

/* The JSON form of msg as an object to change; NULL when out of memory. */
static json_t *
s_json_of(const soffa_msg_t *msg)
{
    char *text = soffa_msg_to_json(msg);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j;
}

static void
s_set_id(json_t *obj, const char *field, const uint8_t id[16])
{
    char text[SOFFA_UUID_STR];
    soffa_uuid_format(id, text);
    json_object_set_new(obj, field, json_string(text));
}

/* Encodes the JSON form j (taken) after validating it. */
static soffa_err_t
s_encode(json_t *j, uint8_t **buf, size_t *len)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text)
        return SOFFA_ERR_NOMEM;
    soffa_msg_t *m = NULL;
    soffa_err_t rc = soffa_msg_from_json(text, &m, NULL, 0);
    free(text);
    if (rc == SOFFA_OK)
        rc = soffa_msg_validate(m, 0, NULL, 0);
    if (rc == SOFFA_OK)
        rc = soffa_msg_encode(m, buf, len);
    soffa_msg_destroy(&m);
    return rc;
}

soffa_err_t
soffa_notice_expired(const soffa_msg_t *referral, const uint8_t message_id[16], int64_t now_us, uint8_t **buf,
                     size_t *len)
{
    if (!referral || !message_id || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    soffa_msg_view_t v;
    soffa_msg_view(referral, &v);
    if (v.type != SOFFA_MT_REFERRAL_SENT || !v.ref_id || !v.consent_id)
        return SOFFA_ERR_INVALID_ARG;
    json_t *j = s_json_of(referral);
    if (!j)
        return SOFFA_ERR_NOMEM;
    json_object_del(j, soffa_msg_type_name(SOFFA_MT_REFERRAL_SENT));
    json_object_del(j, "sender");
    json_object_del(j, "classification");
    json_t *st = json_object();
    s_set_id(st, "referral_id", v.ref_id);
    json_object_set_new(st, "status", json_string("EXPIRED"));
    json_object_set_new(j, soffa_msg_type_name(SOFFA_MT_REFERRAL_STATUS_CHANGED), st);
    json_object_set_new(j, "sender", json_pack("{s:s}", "kind", "SOFFA"));
    s_set_id(j, "message_id", message_id);
    s_set_id(j, "causation_id", v.message_id);
    json_object_set_new(j, "occurred_at_us", json_integer(now_us));
    json_object_set_new(j, "sent_at_us", json_integer(now_us));
    return s_encode(j, buf, len);
}

soffa_err_t
soffa_notice_copy(const soffa_msg_t *msg, const soffa_notice_edit_t *edit, uint8_t **buf, size_t *len)
{
    if (!msg || !edit || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    json_t *j = s_json_of(msg);
    if (!j)
        return SOFFA_ERR_NOMEM;
    if (edit->hemkommun)
        json_object_set_new(json_object_get(j, "subject"), "hemkommun", json_string(edit->hemkommun));
    if (edit->drop_consent)
        json_object_del(j, "consent_id");
    else if (edit->consent_id)
        s_set_id(j, "consent_id", edit->consent_id);
    if (edit->causation_id)
        s_set_id(j, "causation_id", edit->causation_id);
    return s_encode(j, buf, len);
}
