/*  soffa_msg: codec, JSON form, flat view and validation of domain messages.
 *
 *  This file and lib/soffa_wire.c are the only ones that include generated
 *  protobuf-c headers (the codec wall, STYLE.md §8).
 */
#include "soffa_msg.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "soffa_id.h"
#include "soffa_msg.pb-c.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

struct soffa_msg {
    Soffa__Message *pb;   /* owned; freed with protobuf_c_message_free_unpacked */
};

/* The C mirrors must match the generated enumerations. */
_Static_assert((int) SOFFA_LB_CONSENT_OSL_12_2 == (int) SOFFA__LEGAL_BASIS__LB_CONSENT_OSL_12_2, "lb");
_Static_assert((int) SOFFA_LB_SL_29_9_INTERNAL == (int) SOFFA__LEGAL_BASIS__LB_SL_29_9_INTERNAL, "lb");
_Static_assert((int) SOFFA_ROLE_BROKER == (int) SOFFA__ROLE__ROLE_BROKER, "role");
_Static_assert((int) SOFFA_PK_ARBETSFORMEDLINGEN == (int) SOFFA__PARTY_KIND__PK_ARBETSFORMEDLINGEN, "pk");
_Static_assert((int) SOFFA_TK_OTHER == (int) SOFFA__TARGET_KIND__TK_OTHER, "tk");
_Static_assert((int) SOFFA_CP_CASE_SUMMARY == (int) SOFFA__CONSENT_PURPOSE__CP_CASE_SUMMARY, "cp");
_Static_assert((int) SOFFA_RS_RECEIVED == (int) SOFFA__REFERRAL_STATUS__RS_RECEIVED, "rs");
_Static_assert((int) SOFFA_DC_CONTACT == (int) SOFFA__DATA_CATEGORY__DC_CONTACT, "dc");
_Static_assert((int) SOFFA_IDT_LOCAL_RESERVE == (int) SOFFA__ID_TYPE__ID_LOCAL_RESERVE, "idt");
_Static_assert(SOFFA_AR_NOT_HEMKOMMUN_REROUTED == (int) SOFFA__ACK_RESULT__AR_NOT_HEMKOMMUN_REROUTED, "ar");
_Static_assert(SOFFA_CR_MOVED_OUT == (int) SOFFA__CLOSE_REASON__CR_MOVED_OUT, "cr");
_Static_assert(SOFFA_CO_REACHED == (int) SOFFA__CONTACT_OUTCOME__CO_REACHED, "co");
_Static_assert(SOFFA_CO_NOT_REACHED == (int) SOFFA__CONTACT_OUTCOME__CO_NOT_REACHED, "co");
_Static_assert(SOFFA_RS_EXPIRED == (int) SOFFA__REFERRAL_STATUS__RS_EXPIRED, "rs");
_Static_assert(SOFFA_DC_OCCUPATION == (int) SOFFA__DATA_CATEGORY__DC_OCCUPATION, "dc");
_Static_assert(SOFFA_DC_MEASURES == (int) SOFFA__DATA_CATEGORY__DC_MEASURES, "dc");
#define SOFFA_MT_CHECK_(NAME, name, num) \
    _Static_assert((int) SOFFA_MT_##NAME == (int) SOFFA__MESSAGE__PAYLOAD_##NAME, #name);
SOFFA_MSG_TYPES(SOFFA_MT_CHECK_)
#undef SOFFA_MT_CHECK_

/* ---- Lifecycle and codec ------------------------------------------------ */

soffa_err_t
soffa_msg_decode(const void *buf, size_t len, soffa_msg_t **out)
{
    if (!out || (!buf && len))
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    if (len > SOFFA_MSG_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Message *pb = soffa__message__unpack(NULL, len, buf);
    if (!pb)
        return SOFFA_ERR_MALFORMED;
    soffa_msg_t *self = calloc(1, sizeof *self);
    if (!self) {
        soffa__message__free_unpacked(pb, NULL);
        return SOFFA_ERR_NOMEM;
    }
    self->pb = pb;
    *out = self;
    return SOFFA_OK;
}

/* True if m, or any message inside it, carries fields the schema lacks. */
static bool
s_has_unknown(const ProtobufCMessage *m)
{
    if (!m)
        return false;
    if (m->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *) m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) ((const char *) m + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *) base;
            for (size_t j = 0; j < n; j++)
                if (s_has_unknown(v[j]))
                    return true;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *) ((const char *) m + f->quantifier_offset) == f->id
                && s_has_unknown(*(ProtobufCMessage *const *) base))
                return true;
        } else if (s_has_unknown(*(ProtobufCMessage *const *) base)) {
            return true;
        }
    }
    return false;
}

bool
soffa_msg_has_unknown_fields(const soffa_msg_t *msg)
{
    return msg && s_has_unknown(&msg->pb->base);
}

soffa_err_t
soffa_msg_encode(const soffa_msg_t *msg, uint8_t **buf, size_t *len)
{
    if (!msg || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    size_t n = soffa__message__get_packed_size(msg->pb);
    if (n > SOFFA_MSG_MAX)
        return SOFFA_ERR_TOO_LARGE;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__message__pack(msg->pb, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

void
soffa_msg_destroy(soffa_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa__message__free_unpacked((*self_p)->pb, NULL);
    free(*self_p);
    *self_p = NULL;
}

/* ---- Names ------------------------------------------------------------- */

const char *
soffa_msg_type_name(soffa_msg_type_t type)
{
    switch (type) {
#define SOFFA_MT_NAME_(NAME, name, num) case SOFFA_MT_##NAME: return #name;
    SOFFA_MSG_TYPES(SOFFA_MT_NAME_)
#undef SOFFA_MT_NAME_
    case SOFFA_MT_NONE: break;
    }
    return "unknown";
}

soffa_msg_type_t
soffa_msg_type_from_name(const char *name)
{
    if (!name)
        return SOFFA_MT_NONE;
#define SOFFA_MT_FROM_(NAME, name_, num) \
    if (strcmp(name, #name_) == 0)       \
        return SOFFA_MT_##NAME;
    SOFFA_MSG_TYPES(SOFFA_MT_FROM_)
#undef SOFFA_MT_FROM_
    return SOFFA_MT_NONE;
}

static const char *const s_role_names[] = {"none", "school", "kaa", "social", "af", "audit", "broker"};

const char *
soffa_role_name(soffa_role_t role)
{
    if ((unsigned) role < sizeof s_role_names / sizeof *s_role_names)
        return s_role_names[role];
    return "unknown";
}

soffa_role_t
soffa_role_from_name(const char *name)
{
    for (size_t i = 1; name && i < sizeof s_role_names / sizeof *s_role_names; i++)
        if (strcmp(name, s_role_names[i]) == 0)
            return (soffa_role_t) i;
    return SOFFA_ROLE_NONE;
}

soffa_msg_type_t
soffa_msg_type(const soffa_msg_t *msg)
{
    return msg ? (soffa_msg_type_t) msg->pb->payload_case : SOFFA_MT_NONE;
}

/* ---- JSON: generic conversion through the protobuf-c descriptors -------- */

/* uint32 fields holding yyyymmdd business dates. */
static bool
s_is_date_field(const char *name)
{
    static const char *const dates[] = {"effective_date", "period_from", "period_to", "as_of",
                                        "review_date", "start", "end", "valid_from",
                                        "valid_to", "respond_by"};
    for (size_t i = 0; i < sizeof dates / sizeof *dates; i++)
        if (strcmp(name, dates[i]) == 0)
            return true;
    return false;
}

/* Enum value name without its prefix: "LB_SL_15_15_ABSENCE" -> "SL_15_15_ABSENCE". */
static const char *
s_enum_short(const char *name)
{
    const char *u = strchr(name, '_');
    return u ? u + 1 : name;
}

static size_t
s_elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

static json_t *s_msg_to_json(const ProtobufCMessage *m);

static char *
s_hex(const uint8_t *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = hex[b[i] >> 4];
        s[2 * i + 1] = hex[b[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

/* One value at p of field f; NULL when the value is the proto3 default and
 * `skip_default` is set. */
static json_t *
s_value_to_json(const ProtobufCFieldDescriptor *f, const void *p, bool skip_default)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t v = *(const int32_t *) p;
        return skip_default && !v ? NULL : json_integer(v);
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v = *(const uint32_t *) p;
        if (skip_default && !v)
            return NULL;
        soffa_date_t d;
        if (s_is_date_field(f->name) && soffa_date_from_int(v, &d)) {
            char buf[11];
            soffa_date_format(d, buf);
            return json_string(buf);
        }
        return json_integer(v);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = *(const int64_t *) p;
        return skip_default && !v ? NULL : json_integer(v);
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *) p;
        return skip_default && !v ? NULL : json_integer((json_int_t) v);
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = *(const protobuf_c_boolean *) p;
        return skip_default && !v ? NULL : json_boolean(v);
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *) p;
        if (skip_default && !v)
            return NULL;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(s_enum_short(ev->name)) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) p;
        if (!s || (skip_default && !*s))
            return NULL;
        return json_string(s);   /* NULL (dropped) if not UTF-8 */
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        if (skip_default && !b->len)
            return NULL;
        if (b->len == SOFFA_UUID_LEN) {
            char s[SOFFA_UUID_STR];
            soffa_uuid_format(b->data, s);
            return json_string(s);
        }
        char *s = s_hex(b->data, b->len);
        json_t *j = s ? json_string(s) : NULL;
        free(s);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *) p;
        return m ? s_msg_to_json(m) : NULL;
    }
    default: return NULL;
    }
}

static json_t *
s_msg_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *) m;
        json_t *v = NULL;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *) (base + f->quantifier_offset) != f->id)
                continue;
            v = s_value_to_json(f, base + f->offset, false);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + f->quantifier_offset);
            const char *arr = *(char *const *) (base + f->offset);
            if (!n)
                continue;
            v = json_array();
            for (size_t k = 0; v && k < n; k++)
                json_array_append_new(v, s_value_to_json(f, arr + k * s_elem_size(f->type), false));
        } else {
            v = s_value_to_json(f, base + f->offset, true);
        }
        if (v)
            json_object_set_new(obj, f->name, v);
    }
    return obj;
}

char *
soffa_msg_to_json(const soffa_msg_t *msg)
{
    if (!msg)
        return NULL;
    json_t *j = s_msg_to_json(&msg->pb->base);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

typedef struct {
    char *why;
    size_t whylen;
    char path[256];
} s_jctx_t;

static soffa_err_t
s_jfail(s_jctx_t *ctx, soffa_err_t rc, const char *fmt, ...)
{
    if (ctx->why && ctx->whylen) {
        char detail[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        snprintf(ctx->why, ctx->whylen, "%s: %s", ctx->path[0] ? ctx->path : "message", detail);
    }
    return rc;
}

static bool
s_unhex(const char *s, uint8_t **out, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2)
        return false;
    uint8_t *b = malloc(len / 2 + 1);
    if (!b)
        return false;
    for (size_t i = 0; i < len; i += 2) {
        char pair[3] = {s[i], s[i + 1], 0};
        char *end;
        if (!strchr("0123456789abcdefABCDEF", pair[0]) || !strchr("0123456789abcdefABCDEF", pair[1])) {
            free(b);
            return false;
        }
        b[i / 2] = (uint8_t) strtoul(pair, &end, 16);
    }
    *out = b;
    *n = len / 2;
    return true;
}

static soffa_err_t s_json_to_msg(json_t *obj, const ProtobufCMessageDescriptor *d,
                                 ProtobufCMessage **out, s_jctx_t *ctx);

/* Writes one JSON value into the slot at p for field f. */
static soffa_err_t
s_json_to_value(json_t *v, const ProtobufCFieldDescriptor *f, void *p, s_jctx_t *ctx)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        json_int_t n;
        if (json_is_string(v) && s_is_date_field(f->name)) {
            soffa_date_t d;
            if (!soffa_date_parse(json_string_value(v), &d))
                return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "not a date (expected YYYY-MM-DD)");
            n = soffa_date_to_int(d);
        } else if (json_is_integer(v)) {
            n = json_integer_value(v);
        } else {
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected a number");
        }
        switch (f->type) {
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            if (n < 0 || n > (json_int_t) UINT32_MAX)
                return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "number out of range");
            *(uint32_t *) p = (uint32_t) n;
            break;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            if (n < INT32_MIN || n > INT32_MAX)
                return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "number out of range");
            *(int32_t *) p = (int32_t) n;
            break;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            if (n < 0)
                return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "number out of range");
            *(uint64_t *) p = (uint64_t) n;
            break;
        default:
            *(int64_t *) p = (int64_t) n;
        }
        return SOFFA_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected true or false");
        *(protobuf_c_boolean *) p = json_is_true(v);
        return SOFFA_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (json_is_integer(v)) {
            if (!protobuf_c_enum_descriptor_get_value(ed, (int) json_integer_value(v)))
                return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "unknown code %lld",
                               (long long) json_integer_value(v));
            *(int *) p = (int) json_integer_value(v);
            return SOFFA_OK;
        }
        if (!json_is_string(v))
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected a code name");
        const char *s = json_string_value(v);
        for (unsigned i = 0; i < ed->n_values; i++) {
            if (strcmp(s, ed->values[i].name) == 0 || strcmp(s, s_enum_short(ed->values[i].name)) == 0) {
                *(int *) p = ed->values[i].value;
                return SOFFA_OK;
            }
        }
        return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "unknown code '%.40s'", s);
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected a string");
        char *s = strdup(json_string_value(v));
        if (!s)
            return SOFFA_ERR_NOMEM;
        *(char **) p = s;
        return SOFFA_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected an id or hex string");
        ProtobufCBinaryData *b = p;
        const char *s = json_string_value(v);
        uint8_t id[SOFFA_UUID_LEN];
        if (strlen(s) == 36 && soffa_uuid_parse(s, id)) {
            b->data = malloc(SOFFA_UUID_LEN);
            if (!b->data)
                return SOFFA_ERR_NOMEM;
            memcpy(b->data, id, SOFFA_UUID_LEN);
            b->len = SOFFA_UUID_LEN;
            return SOFFA_OK;
        }
        if (!s_unhex(s, &b->data, &b->len))
            return s_jfail(ctx, SOFFA_ERR_BAD_FIELD, "not a UUID or hex string");
        return SOFFA_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        if (!json_is_object(v))
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected an object");
        return s_json_to_msg(v, (const ProtobufCMessageDescriptor *) f->descriptor, (ProtobufCMessage **) p, ctx);
    default:
        return s_jfail(ctx, SOFFA_ERR_MALFORMED, "unsupported field type");
    }
}

static soffa_err_t
s_json_to_msg(json_t *obj, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out,
              s_jctx_t *ctx)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m)
        return SOFFA_ERR_NOMEM;
    protobuf_c_message_init(d, m);
    *out = m;   /* freed by the caller's free_unpacked on any failure */

    const char *key;
    json_t *v;
    size_t plen = strlen(ctx->path);
    json_object_foreach(obj, key, v) {
        snprintf(ctx->path + plen, sizeof ctx->path - plen, "%s%s", plen ? "." : "", key);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (!f)
            return s_jfail(ctx, SOFFA_ERR_MALFORMED, "unknown field");
        char *base = (char *) m;
        soffa_err_t rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v))
                return s_jfail(ctx, SOFFA_ERR_MALFORMED, "expected a list");
            size_t n = json_array_size(v), es = s_elem_size(f->type);
            if (n > 256)
                return s_jfail(ctx, SOFFA_ERR_TOO_LARGE, "list longer than 256");
            char *arr = calloc(n ? n : 1, es);
            if (!arr)
                return SOFFA_ERR_NOMEM;
            *(char **) (base + f->offset) = arr;
            /* Unset elements are zero (NULL pointers), which free_unpacked
             * skips, so the whole array is owned from here on. */
            *(size_t *) (base + f->quantifier_offset) = n;
            for (size_t k = 0; k < n; k++) {
                rc = s_json_to_value(json_array_get(v, k), f, arr + k * es, ctx);
                if (rc != SOFFA_OK)
                    return rc;
            }
        } else {
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t *qcase = (uint32_t *) (base + f->quantifier_offset);
                if (*qcase != 0)
                    return s_jfail(ctx, SOFFA_ERR_MALFORMED, "only one payload may be given");
                *qcase = f->id;
            }
            /* A string or message slot holds the shared default until set;
             * free_unpacked knows not to free that. */
            rc = s_json_to_value(v, f, base + f->offset, ctx);
            if (rc != SOFFA_OK)
                return rc;
        }
        ctx->path[plen] = '\0';
    }
    return SOFFA_OK;
}

soffa_err_t
soffa_msg_from_json(const char *text, soffa_msg_t **out, char *why, size_t whylen)
{
    if (!text || !out)
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    s_jctx_t ctx = {why, whylen, ""};
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return s_jfail(&ctx, SOFFA_ERR_MALFORMED, "not a JSON object (%s, line %d)",
                       root ? "wrong type" : jerr.text, jerr.line);
    }
    ProtobufCMessage *m = NULL;
    soffa_err_t rc = s_json_to_msg(root, &soffa__message__descriptor, &m, &ctx);
    json_decref(root);
    if (rc != SOFFA_OK) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    soffa_msg_t *self = calloc(1, sizeof *self);
    if (!self) {
        protobuf_c_message_free_unpacked(m, NULL);
        return SOFFA_ERR_NOMEM;
    }
    self->pb = (Soffa__Message *) m;
    *out = self;
    return SOFFA_OK;
}

/* ---- Command-line text into JSON ------------------------------------------ */

static const ProtobufCMessageDescriptor *
s_part_descriptor(const char *part)
{
    if (strcmp(part, "message") == 0)
        return &soffa__message__descriptor;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(&soffa__message__descriptor, part);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return NULL;
    return f->descriptor;
}

/* One text value as the JSON the field takes. */
static json_t *
s_text_value(const ProtobufCFieldDescriptor *f, const char *t, char *why, size_t whylen)
{
    char *end;
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        if (!strcmp(t, "true") || !strcmp(t, "yes") || !strcmp(t, "1"))
            return json_true();
        if (!strcmp(t, "false") || !strcmp(t, "no") || !strcmp(t, "0"))
            return json_false();
        snprintf(why, whylen, "--%s takes yes or no", f->name);
        return NULL;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        for (unsigned i = 0; i < ed->n_values; i++)
            if (strcasecmp(t, s_enum_short(ed->values[i].name)) == 0 && ed->values[i].value != 0)
                return json_string(s_enum_short(ed->values[i].name));
        size_t o = (size_t) snprintf(why, whylen, "--%s takes one of:", f->name);
        for (unsigned i = 1; i < ed->n_values && o < whylen; i++)
            o += (size_t) snprintf(why + o, whylen - o, " %s", s_enum_short(ed->values[i].name));
        return NULL;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        uint8_t id[SOFFA_UUID_LEN];
        char s[SOFFA_UUID_STR];
        if (strcmp(t, "new") == 0) {
            soffa_uuid7(id);
            soffa_uuid_format(id, s);
            return json_string(s);
        }
        if (!soffa_uuid_parse(t, id)) {
            snprintf(why, whylen, "--%s takes an id (8-4-4-4-12 hex)", f->name);
            return NULL;
        }
        soffa_uuid_format(id, s);
        return json_string(s);
    }
    case PROTOBUF_C_TYPE_STRING:
        return json_string(t);
    case PROTOBUF_C_TYPE_MESSAGE:
        snprintf(why, whylen, "--%s is a group of fields; set its parts as --%s.FIELD", f->name, f->name);
        return NULL;
    default:
        if (s_is_date_field(f->name)) {
            soffa_date_t d;
            if (!soffa_date_parse(t, &d)) {
                snprintf(why, whylen, "--%s takes a date YYYY-MM-DD", f->name);
                return NULL;
            }
            char buf[11];
            soffa_date_format(d, buf);
            return json_string(buf);
        }
        errno = 0;
        long long v = strtoll(t, &end, 10);
        if (end == t || *end || errno) {
            snprintf(why, whylen, "--%s takes a whole number", f->name);
            return NULL;
        }
        return json_integer(v);
    }
}

bool
soffa_msg_has_field(const char *part, const char *field)
{
    const ProtobufCMessageDescriptor *d = part ? s_part_descriptor(part) : NULL;
    return d && field && protobuf_c_message_descriptor_get_field_by_name(d, field) != NULL;
}

soffa_err_t
soffa_msg_json_set(void *obj, const char *part, const char *path, const char *text, char *why, size_t whylen)
{
    char dummy[8];
    if (!why || !whylen) {
        why = dummy;
        whylen = sizeof dummy;
    }
    const ProtobufCMessageDescriptor *d = s_part_descriptor(part);
    if (!d || !obj || !path || !text) {
        snprintf(why, whylen, "no such message part '%s'", part ? part : "");
        return SOFFA_ERR_BAD_FIELD;
    }
    json_t *o = obj;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL, *name = strtok_r(buf, ".", &save);
    while (name) {
        char *rest = strtok_r(NULL, ".", &save);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
        if (!f || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            snprintf(why, whylen, "--%s: %s has no such field", path, part);
            return SOFFA_ERR_BAD_FIELD;
        }
        if (rest) {
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED) {
                snprintf(why, whylen, "--%s: %s has no parts", path, name);
                return SOFFA_ERR_BAD_FIELD;
            }
            json_t *sub = json_object_get(o, name);
            if (!sub) {
                sub = json_object();
                json_object_set_new(o, name, sub);
            }
            o = sub;
            d = f->descriptor;
            name = rest;
            continue;
        }
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            v = json_array();
            char list[1024];
            snprintf(list, sizeof list, "%s", text);
            char *s2 = NULL;
            for (char *item = strtok_r(list, ",", &s2); item; item = strtok_r(NULL, ",", &s2)) {
                while (*item == ' ')
                    item++;
                if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                    /* A list of groups: each item sets the group's first field. */
                    const ProtobufCMessageDescriptor *gd = f->descriptor;
                    json_t *g = json_object();
                    json_t *gv = gd->n_fields ? s_text_value(&gd->fields[0], item, why, whylen) : NULL;
                    if (!gv) {
                        json_decref(g);
                        json_decref(v);
                        return SOFFA_ERR_BAD_FIELD;
                    }
                    json_object_set_new(g, gd->fields[0].name, gv);
                    json_array_append_new(v, g);
                    continue;
                }
                json_t *e = s_text_value(f, item, why, whylen);
                if (!e) {
                    json_decref(v);
                    return SOFFA_ERR_BAD_FIELD;
                }
                json_array_append_new(v, e);
            }
        } else {
            v = s_text_value(f, text, why, whylen);
            if (!v)
                return SOFFA_ERR_BAD_FIELD;
        }
        json_object_set_new(o, name, v);
        return SOFFA_OK;
    }
    snprintf(why, whylen, "--%s: empty field name", path);
    return SOFFA_ERR_BAD_FIELD;
}

/* ---- View ------------------------------------------------------------- */

static const uint8_t *
s_id16(ProtobufCBinaryData b)
{
    return b.len == SOFFA_UUID_LEN ? b.data : NULL;
}

void
soffa_msg_view(const soffa_msg_t *msg, soffa_msg_view_t *v)
{
    memset(v, 0, sizeof *v);
    v->new_hemkommun = "";
    v->old_id = "";
    v->new_id = "";
    v->subject_id = "";
    v->hemkommun = "";
    v->claimed_kommun = "";
    v->claimed_unit = "";
    v->claimed_orgnr = "";
    v->school_unit = "";
    if (!msg)
        return;
    const Soffa__Message *m = msg->pb;
    v->type = (soffa_msg_type_t) m->payload_case;
    v->message_id = s_id16(m->message_id);
    v->correlation_id = s_id16(m->correlation_id);
    v->causation_id = s_id16(m->causation_id);
    v->consent_id = s_id16(m->consent_id);
    v->occurred_at_us = m->occurred_at_us;
    v->legal_basis = (soffa_legal_basis_t) m->legal_basis;
    if (m->subject) {
        v->id_type = (soffa_id_type_t) m->subject->id_type;
        v->subject_id = m->subject->id;
        v->hemkommun = m->subject->hemkommun;
        v->protected_identity = m->subject->protected_identity;
        v->protection_lifted = m->subject->protection_lifted;
    }
    if (m->occurred_at_us > 0)
        v->event_date = soffa_date_to_int(soffa_date_local(m->occurred_at_us));
    if (m->sender) {
        v->claimed_kind = m->sender->kind;
        v->claimed_kommun = m->sender->kommunkod ? m->sender->kommunkod : "";
        v->claimed_unit = m->sender->unit_id ? m->sender->unit_id : "";
        v->claimed_orgnr = m->sender->org_nr ? m->sender->org_nr : "";
    }

    switch (m->payload_case) {
    case SOFFA__MESSAGE__PAYLOAD_ENROLMENT_CHANGED:
        v->event_date = m->enrolment_changed->effective_date;
        v->school_unit = m->enrolment_changed->school_unit ? m->enrolment_changed->school_unit : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_ABSENCE_REPORTED:
        v->event_date = m->absence_reported->period_from;
        v->school_unit = m->absence_reported->school_unit ? m->absence_reported->school_unit : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_AT_RISK_NOTICE:
        v->school_unit = m->at_risk_notice->school_unit ? m->at_risk_notice->school_unit : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_SIGNAL_ACKNOWLEDGED:
        v->ref_id = s_id16(m->signal_acknowledged->signal_id);
        v->ack_result = m->signal_acknowledged->result;
        v->new_hemkommun = m->signal_acknowledged->new_hemkommun ? m->signal_acknowledged->new_hemkommun : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_OPENED:
        v->ref_id = s_id16(m->kaa_case_opened->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONTACT_ATTEMPTED:
        v->ref_id = s_id16(m->contact_attempted->case_id);
        v->contact_channel = m->contact_attempted->channel;
        v->contact_outcome = m->contact_attempted->outcome;
        break;
    case SOFFA__MESSAGE__PAYLOAD_OCCUPATION_RECORDED:
        v->ref_id = s_id16(m->occupation_recorded->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_PLAN_AGREED:
        v->ref_id = s_id16(m->plan_agreed->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_STARTED:
        v->ref_id = s_id16(m->measure_started->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_ENDED:
        v->ref_id = s_id16(m->measure_ended->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_CLOSED:
        v->ref_id = s_id16(m->kaa_case_closed->case_id);
        v->new_hemkommun = m->kaa_case_closed->new_hemkommun;
        v->close_reason = m->kaa_case_closed->reason;
        break;
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_REOPENED:
        v->ref_id = s_id16(m->kaa_case_reopened->case_id);
        v->signal_id = s_id16(m->kaa_case_reopened->signal_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_SUBJECT_IDENTITY_CHANGED: {
        const Soffa__SubjectIdentityChanged *c = m->subject_identity_changed;
        if (c->old_id) {
            v->old_id = c->old_id->id;
            v->old_id_type = c->old_id->id_type;
        }
        if (c->new_id) {
            v->new_id = c->new_id->id;
            v->new_id_type = c->new_id->id_type;
        }
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_RECORDED: {
        const Soffa__ConsentRecorded *c = m->consent_recorded;
        v->ref_id = s_id16(c->consent_id);
        v->consent_valid_from = c->valid_from;
        v->consent_valid_to = c->valid_to;
        if (c->scope) {
            for (size_t i = 0; i < c->scope->n_recipients; i++)
                if (c->scope->recipients[i] > 0 && c->scope->recipients[i] < 32)
                    v->consent_recipients |= 1u << c->scope->recipients[i];
            for (size_t i = 0; i < c->scope->n_purposes; i++)
                if (c->scope->purposes[i] > 0 && c->scope->purposes[i] < 32)
                    v->consent_purposes |= 1u << c->scope->purposes[i];
            for (size_t i = 0; i < c->scope->n_data_categories; i++)
                if (c->scope->data_categories[i] > 0 && c->scope->data_categories[i] < 32)
                    v->consent_categories |= 1u << c->scope->data_categories[i];
        }
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_WITHDRAWN:
        v->ref_id = s_id16(m->consent_withdrawn->consent_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT: {
        const Soffa__ReferralSent *r = m->referral_sent;
        v->ref_id = s_id16(r->referral_id);
        v->target_kind = (soffa_target_kind_t) r->target_kind;
        v->purpose = r->purpose;
        v->has_contact = r->contact && ((r->contact->phone && *r->contact->phone)
                                        || (r->contact->email && *r->contact->email));
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_STATUS_CHANGED:
        v->ref_id = s_id16(m->referral_status_changed->referral_id);
        v->referral_status = m->referral_status_changed->status;
        break;
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_WITHDRAWN:
        v->ref_id = s_id16(m->referral_withdrawn->referral_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FILED:
        v->ref_id = s_id16(m->concern_report_filed->report_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FEEDBACK:
        v->ref_id = s_id16(m->concern_report_feedback->report_id);
        break;
    default:
        break;
    }
}

/* ---- Validation --------------------------------------------------------- */

typedef struct {
    char *why;
    size_t whylen;
    int64_t now_us;
} s_vctx_t;

static soffa_err_t
s_bad(s_vctx_t *c, soffa_err_t rc, const char *field, const char *fmt, ...)
{
    if (c->why && c->whylen) {
        char detail[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        snprintf(c->why, c->whylen, "%s: %s", field, detail);
    }
    return rc;
}

#define S_CHECK(expr)                     \
    do {                                  \
        soffa_err_t rc_ = (expr);         \
        if (rc_ != SOFFA_OK)              \
            return rc_;                   \
    } while (0)

/* Number of UTF-8 characters in s, or -1 if s is not valid UTF-8 or holds
 * control characters other than newline and tab. */
static long
s_utf8_chars(const char *s)
{
    long n = 0;
    const unsigned char *p = (const unsigned char *) s;
    while (*p) {
        int extra;
        if (*p < 0x80) {
            if (*p < 0x20 && *p != '\n' && *p != '\t')
                return -1;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2) {
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4) {
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return -1;
        n++;
    }
    return n;
}

static soffa_err_t
s_text(s_vctx_t *c, const char *field, const char *s, long max, bool required)
{
    long n = s ? s_utf8_chars(s) : 0;
    if (n < 0)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "not valid UTF-8 text");
    if (required && n == 0)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    if (n > max)
        return s_bad(c, SOFFA_ERR_TOO_LARGE, field, "longer than %ld characters", max);
    return SOFFA_OK;
}

static soffa_err_t
s_uuid(s_vctx_t *c, const char *field, ProtobufCBinaryData b, bool required)
{
    if (b.len == 0)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (b.len != SOFFA_UUID_LEN)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "must be a 16-byte id");
    if (soffa_uuid_is_nil(b.data))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "must not be the nil id");
    return SOFFA_OK;
}

static soffa_err_t
s_enum(s_vctx_t *c, const char *field, int v, int lo, int hi, bool required)
{
    if (v == 0 && !required)
        return SOFFA_OK;
    if (v == 0)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    if (v < lo || v > hi)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "unknown code %d", v);
    return SOFFA_OK;
}

static soffa_err_t
s_date(s_vctx_t *c, const char *field, uint32_t v, bool required)
{
    if (v == 0)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (!soffa_date_from_int(v, NULL) || v < 19000101 || v > 21001231)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "not a real date (%u)", v);
    return SOFFA_OK;
}

static soffa_err_t
s_skolenhet(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    if (soffa_skolenhet_check(s) != SOFFA_OK)
        return s_bad(c, SOFFA_ERR_SKOLENHET, field, "school unit code must be 8 digits");
    return SOFFA_OK;
}

static soffa_err_t
s_kommun(s_vctx_t *c, const char *field, const char *s, bool required)
{
    if (!s || !*s)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (soffa_kommun_check(s) != SOFFA_OK)
        return s_bad(c, SOFFA_ERR_KOMMUN, field, "'%.8s' is not one of the 290 municipality codes", s);
    return SOFFA_OK;
}

/* field + suffix into out (cheaper than snprintf on every valid message). */
static void
s_path(char *out, size_t cap, const char *field, const char *suffix)
{
    size_t a = strlen(field), b = strlen(suffix);
    if (a >= cap)
        a = cap - 1;
    if (b >= cap - a)
        b = cap - a - 1;
    memcpy(out, field, a);
    memcpy(out + a, suffix, b);
    out[a + b] = '\0';
}

/* ---- Code and reference fields: strict forms -------------------------------
 * Only three fields carry free text (the at-risk note, the referral summary
 * and the concern report's description). Every other string is a code or a
 * reference with its own character set and length, so nothing else can
 * carry prose (a diagnosis, a placement) past validation. */

static bool
s_in(char ch, const char *set)
{
    return ch && strchr(set, ch) != NULL;
}

#define S_DIGITS "0123456789"
#define S_UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define S_LOWER "abcdefghijklmnopqrstuvwxyz"

/* True if s holds a personnummer or samordningsnummer in any written form
 * (judged on `today`). Only windows with ten digits are tried. */
static bool
s_holds_id_number(const char *s, soffa_date_t today)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + 10 <= n; i++) {
        for (size_t w = 10; w <= 13 && i + w <= n; w++) {
            size_t digits = 0;
            for (size_t k = 0; k < w; k++)
                digits += s_in(s[i + k], S_DIGITS);
            if (digits < 10)
                continue;
            char win[14], canon[13];
            memcpy(win, s + i, w);
            win[w] = '\0';
            if (soffa_id_parse(win, &today, canon, NULL) == SOFFA_OK)
                return true;
        }
    }
    return false;
}

/* Whether s (non-empty) is made of `set` only, between min and max long,
 * starting with a character of `first`. */
static bool
s_form(const char *s, const char *first, const char *set, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max || !s_in(s[0], first))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!s_in(s[i], set))
            return false;
    return true;
}

/* A pseudonymous user reference (actor_ref, recorded_by): like handl-17 or
 * an HSA-id such as SE2321000131-E000000000001. */
static soffa_err_t
s_user_ref(s_vctx_t *c, const char *field, const char *s, bool required)
{
    if (!s || !*s)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (!s_form(s, S_LOWER S_UPPER S_DIGITS, S_LOWER S_UPPER S_DIGITS "._-", 1, 32))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a user reference: 1 to 32 of a-z A-Z 0-9 . _ - starting with a letter or digit (e.g. handl-17)");
    if (s_holds_id_number(s, soffa_date_local(c->now_us)))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "a user reference must not hold an identity number");
    return SOFFA_OK;
}

/* A unit: a skolenhetskod for a school principal, else a local unit code. */
static soffa_err_t
s_unit_id(s_vctx_t *c, const char *field, const char *s, int kind)
{
    if (!s || !*s)
        return SOFFA_OK;
    if (kind == SOFFA__PARTY_KIND__PK_SCHOOL_PRINCIPAL) {
        if (soffa_skolenhet_check(s) != SOFFA_OK)
            return s_bad(c, SOFFA_ERR_SKOLENHET, field, "a school principal's unit is its 8-digit skolenhetskod");
        return SOFFA_OK;
    }
    if (!s_form(s, S_UPPER S_DIGITS, S_UPPER S_DIGITS "-", 1, 16))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "a unit code: 1 to 16 of A-Z 0-9 - starting with a letter or digit");
    return SOFFA_OK;
}

/* A Skolverket programme code: SA, NA, SAEKO, IMYRK ... */
static soffa_err_t
s_programme(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    if (!s_form(s, S_UPPER, S_UPPER S_DIGITS, 2, 8))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a Skolverket programme code: 2 to 8 of A-Z 0-9 starting with a letter (e.g. SA, NAT, SAEKO)");
    return SOFFA_OK;
}

/* A secrecy provision: LAW CHAPTER:SECTION, optionally a paragraph letter,
 * e.g. "OSL 26:1", "OSL 23:2", "OSL 26:9 a". */
static soffa_err_t
s_secrecy_ref(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    const char *p = s;
    size_t law = strspn(p, S_UPPER);
    bool ok = law >= 2 && law <= 5 && p[law] == ' ';
    if (ok) {
        p += law + 1;
        size_t ch = strspn(p, S_DIGITS);
        ok = ch >= 1 && ch <= 2 && p[ch] == ':';
        if (ok) {
            p += ch + 1;
            size_t sec = strspn(p, S_DIGITS);
            ok = sec >= 1 && sec <= 3;
            p += sec;
            if (ok && *p == ' ')
                ok = s_in(p[1], S_LOWER) && p[2] == '\0';
            else
                ok = ok && *p == '\0';
        }
    }
    if (!ok)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a secrecy provision: law, chapter:section and an optional letter (e.g. 'OSL 26:1', 'OSL 26:9 a')");
    return SOFFA_OK;
}

/* A telephone number: 7 to 15 digits, an optional leading +, single spaces
 * or hyphens between digit groups, at most 20 characters. */
static soffa_err_t
s_phone(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    size_t n = strlen(s), digits = 0;
    bool ok = n <= 20;
    for (size_t i = (s[0] == '+'); ok && i < n; i++) {
        if (s_in(s[i], S_DIGITS))
            digits++;
        else
            ok = (s[i] == ' ' || s[i] == '-') && i > (size_t) (s[0] == '+') && i + 1 < n
                 && s_in(s[i - 1], S_DIGITS) && s_in(s[i + 1], S_DIGITS);
    }
    if (!ok || digits < 7 || digits > 15)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a phone number: 7 to 15 digits, optional leading +, single spaces or - between groups");
    return SOFFA_OK;
}

/* An e-mail address: local@domain.tld, plain ASCII, at most 254 characters;
 * the local part a-z A-Z 0-9 . _ % + - (1 to 64), the domain labels of
 * letters, digits and inner hyphens, a top-level domain of letters. */
static soffa_err_t
s_email(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    const char *at = strchr(s, '@');
    bool ok = at && strlen(s) <= 254 && at > s && at - s <= 64 && !strchr(at + 1, '@');
    for (const char *p = s; ok && p < at; p++)
        ok = s_in(*p, S_LOWER S_UPPER S_DIGITS "._%+-");
    if (ok) {
        /* Labels: 1 to 63 characters, no hyphen at either end; at least two. */
        const char *label = at + 1, *last = NULL;
        int labels = 0;
        while (ok) {
            size_t len = strspn(label, S_LOWER S_UPPER S_DIGITS "-");
            ok = len >= 1 && len <= 63 && label[0] != '-' && label[len - 1] != '-'
                 && (label[len] == '.' || label[len] == '\0');
            labels++;
            last = label;
            if (!ok || label[len] == '\0')
                break;
            label += len + 1;
        }
        ok = ok && labels >= 2 && strspn(last, S_LOWER S_UPPER) == strlen(last) && strlen(last) >= 2;
    }
    if (!ok)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "an e-mail address name@domain.se (ASCII letters, digits and . _ % + - before the @)");
    return SOFFA_OK;
}

static soffa_err_t
s_person(s_vctx_t *c, const char *field, const Soffa__PersonRef *p)
{
    char f[64];
    if (!p)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    s_path(f, sizeof f, field, ".id_type");
    S_CHECK(s_enum(c, f, p->id_type, 1, 3, true));
    s_path(f, sizeof f, field, ".id");
    if (p->id_type == SOFFA__ID_TYPE__ID_LOCAL_RESERVE) {
        soffa_id_kind_t kind;
        if (soffa_id_check(p->id, &kind) == SOFFA_OK)
            return s_bad(c, SOFFA_ERR_ID_FORMAT, f, "this is a %s, not a reserve number: send it with id_type %s",
                         soffa_id_kind_name(kind), kind == SOFFA_ID_SAMNR ? "SAMNR" : "PNR");
        soffa_date_t today = soffa_date_local(c->now_us);
        soffa_err_t rc = soffa_reserve_check(p->id, &today);
        if (rc == SOFFA_ERR_ID_DATE)
            return s_bad(c, rc, f, "a reserve number begins with the birth date YYYYMMDD: a real date, not in the future");
        if (rc != SOFFA_OK)
            return s_bad(c, rc, f, "a reserve number is the birth date YYYYMMDD and 4 of A-Z 0-9 with at least "
                                   "two letters (e.g. 20080314TF10)");
    } else {
        soffa_id_kind_t kind;
        soffa_err_t rc = soffa_id_check(p->id, &kind);
        if (rc != SOFFA_OK)
            return s_bad(c, rc, f, "%s", soffa_strerror(rc));
        if ((kind == SOFFA_ID_SAMNR) != (p->id_type == SOFFA__ID_TYPE__ID_SAMNR))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, f, "id_type says %s but the number is a %s",
                         p->id_type == SOFFA__ID_TYPE__ID_SAMNR ? "SAMNR" : "PNR", soffa_id_kind_name(kind));
    }
    if (p->protected_identity && p->protection_lifted) {
        s_path(f, sizeof f, field, ".protection_lifted");
        return s_bad(c, SOFFA_ERR_BAD_FIELD, f, "an identity cannot be both protected and no longer protected");
    }
    s_path(f, sizeof f, field, ".hemkommun");
    return s_kommun(c, f, p->hemkommun, true);
}

static soffa_err_t
s_party(s_vctx_t *c, const char *field, const Soffa__Party *p)
{
    char f[64];
    if (!p)
        return SOFFA_OK;
    s_path(f, sizeof f, field, ".kind");
    S_CHECK(s_enum(c, f, p->kind, 1, 5, false));
    if (p->org_nr && *p->org_nr
        && (strlen(p->org_nr) != 10 || soffa_orgnr_check(p->org_nr) != SOFFA_OK)) {
        s_path(f, sizeof f, field, ".org_nr");
        return s_bad(c, SOFFA_ERR_ORGNR, f, "an organisationsnummer: 10 digits, no hyphen, with a valid check digit");
    }
    s_path(f, sizeof f, field, ".kommunkod");
    S_CHECK(s_kommun(c, f, p->kommunkod, false));
    s_path(f, sizeof f, field, ".unit_id");
    S_CHECK(s_unit_id(c, f, p->unit_id, p->kind));
    s_path(f, sizeof f, field, ".actor_ref");
    return s_user_ref(c, f, p->actor_ref, false);
}

static soffa_err_t
s_payload(s_vctx_t *c, const Soffa__Message *m)
{
    switch (m->payload_case) {
    case SOFFA__MESSAGE__PAYLOAD_ENROLMENT_CHANGED: {
        const Soffa__EnrolmentChanged *p = m->enrolment_changed;
        S_CHECK(s_enum(c, "enrolment_changed.event", p->event, 1, 2, true));
        S_CHECK(s_date(c, "enrolment_changed.effective_date", p->effective_date, true));
        S_CHECK(s_skolenhet(c, "enrolment_changed.school_unit", p->school_unit));
        S_CHECK(s_enum(c, "enrolment_changed.school_form", p->school_form, 1, 2, true));
        S_CHECK(s_programme(c, "enrolment_changed.programme_code", p->programme_code));
        S_CHECK(s_enum(c, "enrolment_changed.leave_reason", p->leave_reason, 1, 5, false));
        if (p->event == SOFFA__ENROLMENT_EVENT__EE_STARTED && p->leave_reason)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "enrolment_changed.leave_reason", "only allowed when the pupil LEFT");
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_ABSENCE_REPORTED: {
        const Soffa__AbsenceReported *p = m->absence_reported;
        S_CHECK(s_date(c, "absence_reported.period_from", p->period_from, true));
        S_CHECK(s_date(c, "absence_reported.period_to", p->period_to, true));
        if (p->period_from > p->period_to)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "absence_reported.period_to", "ends before period_from");
        S_CHECK(s_enum(c, "absence_reported.unexcused_band", p->unexcused_band, 1, 3, true));
        S_CHECK(s_enum(c, "absence_reported.reported_to_csn", p->reported_to_csn, 1, 2, false));
        return s_skolenhet(c, "absence_reported.school_unit", p->school_unit);
    }
    case SOFFA__MESSAGE__PAYLOAD_AT_RISK_NOTICE: {
        const Soffa__AtRiskNotice *p = m->at_risk_notice;
        S_CHECK(s_enum(c, "at_risk_notice.risk_code", p->risk_code, 1, 4, true));
        S_CHECK(s_text(c, "at_risk_notice.note", p->note, 300, false));
        return s_skolenhet(c, "at_risk_notice.school_unit", p->school_unit);
    }
    case SOFFA__MESSAGE__PAYLOAD_SIGNAL_ACKNOWLEDGED: {
        const Soffa__SignalAcknowledged *p = m->signal_acknowledged;
        S_CHECK(s_uuid(c, "signal_acknowledged.signal_id", p->signal_id, true));
        S_CHECK(s_enum(c, "signal_acknowledged.result", p->result, 1, 4, true));
        bool rerouted = p->result == SOFFA__ACK_RESULT__AR_NOT_HEMKOMMUN_REROUTED;
        if (!rerouted && p->new_hemkommun && *p->new_hemkommun)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "signal_acknowledged.new_hemkommun",
                         "only with result NOT_HEMKOMMUN_REROUTED");
        return s_kommun(c, "signal_acknowledged.new_hemkommun", p->new_hemkommun, rerouted);
    }
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_OPENED: {
        const Soffa__KaaCaseOpened *p = m->kaa_case_opened;
        S_CHECK(s_uuid(c, "kaa_case_opened.case_id", p->case_id, true));
        S_CHECK(s_enum(c, "kaa_case_opened.registration_reason", p->registration_reason, 1, 5, true));
        if (p->n_source_signal_ids > 64)
            return s_bad(c, SOFFA_ERR_TOO_LARGE, "kaa_case_opened.source_signal_ids", "more than 64");
        for (size_t i = 0; i < p->n_source_signal_ids; i++)
            S_CHECK(s_uuid(c, "kaa_case_opened.source_signal_ids", p->source_signal_ids[i], true));
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_CONTACT_ATTEMPTED: {
        const Soffa__ContactAttempted *p = m->contact_attempted;
        S_CHECK(s_uuid(c, "contact_attempted.case_id", p->case_id, true));
        if (p->attempt_no < 1 || p->attempt_no > 1000)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "contact_attempted.attempt_no", "must be 1 to 1000");
        S_CHECK(s_enum(c, "contact_attempted.channel", p->channel, 1, 8, true));
        return s_enum(c, "contact_attempted.outcome", p->outcome, 1, 6, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_OCCUPATION_RECORDED: {
        const Soffa__OccupationRecorded *p = m->occupation_recorded;
        S_CHECK(s_uuid(c, "occupation_recorded.case_id", p->case_id, true));
        S_CHECK(s_date(c, "occupation_recorded.as_of", p->as_of, true));
        return s_enum(c, "occupation_recorded.occupation", p->occupation, 1, 8, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_PLAN_AGREED: {
        const Soffa__PlanAgreed *p = m->plan_agreed;
        S_CHECK(s_uuid(c, "plan_agreed.case_id", p->case_id, true));
        S_CHECK(s_uuid(c, "plan_agreed.plan_id", p->plan_id, true));
        S_CHECK(s_enum(c, "plan_agreed.goal", p->goal, 1, 3, true));
        if (p->n_measures > 32)
            return s_bad(c, SOFFA_ERR_TOO_LARGE, "plan_agreed.measures", "more than 32");
        for (size_t i = 0; i < p->n_measures; i++) {
            S_CHECK(s_uuid(c, "plan_agreed.measures.measure_id", p->measures[i]->measure_id, true));
            S_CHECK(s_enum(c, "plan_agreed.measures.measure_type", p->measures[i]->measure_type, 1, 8, true));
        }
        return s_date(c, "plan_agreed.review_date", p->review_date, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_STARTED: {
        const Soffa__MeasureStarted *p = m->measure_started;
        S_CHECK(s_uuid(c, "measure_started.case_id", p->case_id, true));
        S_CHECK(s_uuid(c, "measure_started.measure_id", p->measure_id, true));
        S_CHECK(s_enum(c, "measure_started.measure_type", p->measure_type, 1, 8, true));
        S_CHECK(s_party(c, "measure_started.provider", p->provider));
        return s_date(c, "measure_started.start", p->start, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_ENDED: {
        const Soffa__MeasureEnded *p = m->measure_ended;
        S_CHECK(s_uuid(c, "measure_ended.case_id", p->case_id, true));
        S_CHECK(s_uuid(c, "measure_ended.measure_id", p->measure_id, true));
        S_CHECK(s_enum(c, "measure_ended.measure_type", p->measure_type, 1, 8, true));
        S_CHECK(s_date(c, "measure_ended.end", p->end, true));
        return s_enum(c, "measure_ended.outcome", p->outcome, 1, 2, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_CLOSED: {
        const Soffa__KaaCaseClosed *p = m->kaa_case_closed;
        S_CHECK(s_uuid(c, "kaa_case_closed.case_id", p->case_id, true));
        S_CHECK(s_enum(c, "kaa_case_closed.reason", p->reason, 1, 9, true));
        if (p->reason != SOFFA__CLOSE_REASON__CR_MOVED_OUT && p->new_hemkommun && *p->new_hemkommun)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "kaa_case_closed.new_hemkommun", "only allowed with reason MOVED_OUT");
        return s_kommun(c, "kaa_case_closed.new_hemkommun", p->new_hemkommun, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_RECORDED: {
        const Soffa__ConsentRecorded *p = m->consent_recorded;
        S_CHECK(s_uuid(c, "consent_recorded.consent_id", p->consent_id, true));
        if (p->n_granted_by < 1 || p->n_granted_by > 4)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "consent_recorded.granted_by", "one to four grants required");
        for (size_t i = 0; i < p->n_granted_by; i++) {
            S_CHECK(s_enum(c, "consent_recorded.granted_by.role", p->granted_by[i]->role, 1, 2, true));
            if (p->granted_by[i]->person)
                S_CHECK(s_person(c, "consent_recorded.granted_by.person", p->granted_by[i]->person));
        }
        if (p->youth_age_at_grant < 13 || p->youth_age_at_grant > 25)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.youth_age_at_grant", "must be 13 to 25");
        const Soffa__ConsentScope *s = p->scope;
        if (!s || !s->n_recipients || !s->n_purposes || !s->n_data_categories)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "consent_recorded.scope",
                         "recipients, purposes and data_categories are required");
        for (size_t i = 0; i < s->n_recipients; i++)
            S_CHECK(s_enum(c, "consent_recorded.scope.recipients", s->recipients[i], 1, 4, true));
        for (size_t i = 0; i < s->n_purposes; i++)
            S_CHECK(s_enum(c, "consent_recorded.scope.purposes", s->purposes[i], 1, 3, true));
        for (size_t i = 0; i < s->n_data_categories; i++)
            S_CHECK(s_enum(c, "consent_recorded.scope.data_categories", s->data_categories[i], 1, 5, true));
        S_CHECK(s_enum(c, "consent_recorded.form", p->form, 1, 3, true));
        S_CHECK(s_date(c, "consent_recorded.valid_from", p->valid_from, true));
        S_CHECK(s_date(c, "consent_recorded.valid_to", p->valid_to, true));
        if (p->valid_to < p->valid_from)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.valid_to", "ends before valid_from");
        if (p->valid_to > p->valid_from + 10000)   /* yyyymmdd + one year */
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.valid_to", "more than 12 months after valid_from");
        return s_user_ref(c, "consent_recorded.recorded_by", p->recorded_by, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_WITHDRAWN: {
        const Soffa__ConsentWithdrawn *p = m->consent_withdrawn;
        S_CHECK(s_uuid(c, "consent_withdrawn.consent_id", p->consent_id, true));
        if (p->withdrawn_at_us <= 0)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "consent_withdrawn.withdrawn_at_us", "required");
        return s_enum(c, "consent_withdrawn.by", p->by, 1, 2, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT: {
        const Soffa__ReferralSent *p = m->referral_sent;
        S_CHECK(s_uuid(c, "referral_sent.referral_id", p->referral_id, true));
        S_CHECK(s_enum(c, "referral_sent.target_kind", p->target_kind, 1, 4, true));
        int lo = 0, hi = 0;
        switch (p->target_kind) {
        case SOFFA__TARGET_KIND__TK_ARBETSFORMEDLINGEN: lo = 1; hi = 3; break;
        case SOFFA__TARGET_KIND__TK_SOCIAL_SERVICES: lo = 10; hi = 12; break;
        case SOFFA__TARGET_KIND__TK_SCHOOL: lo = hi = 20; break;
        default: lo = hi = 30; break;
        }
        if ((int) p->purpose < lo || (int) p->purpose > hi)
            return s_bad(c, p->purpose ? SOFFA_ERR_BAD_FIELD : SOFFA_ERR_MISSING_FIELD,
                         "referral_sent.purpose", "not a purpose for this target kind");
        if (p->contact) {
            S_CHECK(s_phone(c, "referral_sent.contact.phone", p->contact->phone));
            S_CHECK(s_email(c, "referral_sent.contact.email", p->contact->email));
        }
        S_CHECK(s_text(c, "referral_sent.summary", p->summary, 1000, false));
        return s_date(c, "referral_sent.respond_by", p->respond_by, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_STATUS_CHANGED: {
        const Soffa__ReferralStatusChanged *p = m->referral_status_changed;
        S_CHECK(s_uuid(c, "referral_status_changed.referral_id", p->referral_id, true));
        S_CHECK(s_enum(c, "referral_status_changed.status", p->status, 1, 9, true));
        if (p->reason_code > 999)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "referral_status_changed.reason_code", "must be 0 to 999");
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_WITHDRAWN: {
        const Soffa__ReferralWithdrawn *p = m->referral_withdrawn;
        S_CHECK(s_uuid(c, "referral_withdrawn.referral_id", p->referral_id, true));
        return s_enum(c, "referral_withdrawn.reason", p->reason, 1, 4, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FILED: {
        const Soffa__ConcernReportFiled *p = m->concern_report_filed;
        S_CHECK(s_uuid(c, "concern_report_filed.report_id", p->report_id, true));
        S_CHECK(s_enum(c, "concern_report_filed.reporter_role", p->reporter_role, 1, 3, true));
        if (p->n_concern_codes < 1 || p->n_concern_codes > 8)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "concern_report_filed.concern_codes", "one to eight codes required");
        for (size_t i = 0; i < p->n_concern_codes; i++)
            S_CHECK(s_enum(c, "concern_report_filed.concern_codes", p->concern_codes[i], 1, 7, true));
        return s_text(c, "concern_report_filed.description", p->description, 4000, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FEEDBACK: {
        const Soffa__ConcernReportFeedback *p = m->concern_report_feedback;
        S_CHECK(s_uuid(c, "concern_report_feedback.report_id", p->report_id, true));
        return s_enum(c, "concern_report_feedback.feedback", p->feedback, 1, 3, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_REOPENED: {
        const Soffa__KaaCaseReopened *p = m->kaa_case_reopened;
        S_CHECK(s_uuid(c, "kaa_case_reopened.case_id", p->case_id, true));
        return s_uuid(c, "kaa_case_reopened.signal_id", p->signal_id, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_SUBJECT_IDENTITY_CHANGED: {
        const Soffa__SubjectIdentityChanged *p = m->subject_identity_changed;
        S_CHECK(s_person(c, "subject_identity_changed.old_id", p->old_id));
        S_CHECK(s_person(c, "subject_identity_changed.new_id", p->new_id));
        return s_enum(c, "subject_identity_changed.source", p->source, 1, 2, true);
    }
    default:
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, "payload", "the message has no payload of a known type");
    }
}

soffa_err_t
soffa_msg_validate(const soffa_msg_t *msg, int64_t now_us, char *why, size_t whylen)
{
    if (!msg)
        return SOFFA_ERR_INVALID_ARG;
    s_vctx_t c = {why, whylen, now_us ? now_us : soffa_now_us()};
    const Soffa__Message *m = msg->pb;

    S_CHECK(s_uuid(&c, "message_id", m->message_id, true));
    if (!soffa_uuid_is_v7(m->message_id.data))
        return s_bad(&c, SOFFA_ERR_BAD_FIELD, "message_id", "must be a UUIDv7");
    if (!m->schema_version || strncmp(m->schema_version, "1.", 2) != 0
        || !s_form(m->schema_version + 2, S_DIGITS, S_DIGITS, 1, 3))
        return s_bad(&c, SOFFA_ERR_VERSION, "schema_version", "must be 1.N (N: 1 to 3 digits)");
    /* Business time may not lie more than a day ahead of the reference clock. */
    const int64_t day_us = 86400LL * 1000000;
    if (m->occurred_at_us <= 0 || m->occurred_at_us > c.now_us + day_us)
        return s_bad(&c, m->occurred_at_us ? SOFFA_ERR_BAD_FIELD : SOFFA_ERR_MISSING_FIELD,
                     "occurred_at_us", "must be a time not in the future");
    if (m->sent_at_us <= 0)
        return s_bad(&c, SOFFA_ERR_MISSING_FIELD, "sent_at_us", "required");
    S_CHECK(s_party(&c, "sender", m->sender));
    S_CHECK(s_person(&c, "subject", m->subject));
    S_CHECK(s_enum(&c, "legal_basis", m->legal_basis, 1, 6, true));
    S_CHECK(s_uuid(&c, "consent_id", m->consent_id,
                   m->legal_basis == SOFFA__LEGAL_BASIS__LB_CONSENT_OSL_12_2));
    S_CHECK(s_uuid(&c, "correlation_id", m->correlation_id, true));
    S_CHECK(s_uuid(&c, "causation_id", m->causation_id, false));
    if (m->classification) {
        S_CHECK(s_secrecy_ref(&c, "classification.secrecy_ref", m->classification->secrecy_ref));
        S_CHECK(s_enum(&c, "classification.level", m->classification->level, 1, 3, false));
    }
    return s_payload(&c, m);
}

/* ---- Messages the broker writes itself ---- */

soffa_err_t
soffa_msg_referral_withdrawn(const soffa_msg_t *referral, const uint8_t consent_id[16], const uint8_t cause[16],
                             const uint8_t message_id[16], int64_t now_us, uint8_t **buf, size_t *len)
{
    if (!referral || !consent_id || !cause || !message_id || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    const Soffa__Message *r = referral->pb;
    if (r->payload_case != SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT || !r->subject
        || r->referral_sent->referral_id.len != SOFFA_UUID_LEN)
        return SOFFA_ERR_INVALID_ARG;
    Soffa__PersonRef subject = SOFFA__PERSON_REF__INIT;
    subject.id_type = r->subject->id_type;
    subject.id = r->subject->id;
    subject.protected_identity = r->subject->protected_identity;
    subject.hemkommun = r->subject->hemkommun;
    Soffa__ReferralWithdrawn w = SOFFA__REFERRAL_WITHDRAWN__INIT;
    w.referral_id = r->referral_sent->referral_id;
    w.reason = SOFFA__WITHDRAW_REASON__WR_CONSENT_WITHDRAWN;
    Soffa__Message m = SOFFA__MESSAGE__INIT;
    m.message_id = (ProtobufCBinaryData) {SOFFA_UUID_LEN, (uint8_t *) message_id};
    m.schema_version = "1.0";
    m.occurred_at_us = now_us;
    m.sent_at_us = now_us;
    m.subject = &subject;
    m.legal_basis = SOFFA__LEGAL_BASIS__LB_CONSENT_OSL_12_2;
    m.consent_id = (ProtobufCBinaryData) {SOFFA_UUID_LEN, (uint8_t *) consent_id};
    m.correlation_id = r->correlation_id.len == SOFFA_UUID_LEN ? r->correlation_id : w.referral_id;
    m.causation_id = (ProtobufCBinaryData) {SOFFA_UUID_LEN, (uint8_t *) cause};
    m.payload_case = SOFFA__MESSAGE__PAYLOAD_REFERRAL_WITHDRAWN;
    m.referral_withdrawn = &w;
    size_t n = soffa__message__get_packed_size(&m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__message__pack(&m, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

/* ---- Free text ---------------------------------------------------------------- */

const char *
soffa_msg_free_text(const soffa_msg_t *msg, const char **field)
{
    const char *text = NULL, *name = NULL;
    const Soffa__Message *m = msg ? msg->pb : NULL;
    switch (m ? m->payload_case : SOFFA__MESSAGE__PAYLOAD__NOT_SET) {
    case SOFFA__MESSAGE__PAYLOAD_AT_RISK_NOTICE:
        text = m->at_risk_notice->note;
        name = "at_risk_notice.note";
        break;
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT:
        text = m->referral_sent->summary;
        name = "referral_sent.summary";
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FILED:
        text = m->concern_report_filed->description;
        name = "concern_report_filed.description";
        break;
    default: break;
    }
    if (!text || !*text)
        text = NULL, name = NULL;
    if (field)
        *field = name;
    return text;
}
