/*  soffa_msg_json: the JSON form of domain messages (see soffa_msg_json.h). */
#include "soffa_msg_json.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_time.h"
#include "soffa_uuid.h"
#include "soffa_msg_int.h"

/* ---- JSON: generic conversion through the protobuf-c descriptors -------- */

/* uint32 fields holding yyyymmdd business dates. */
static bool
s_is_date_field(const char *name)
{
    static const char *const dates[] = {"effective_date", "period_from", "period_to", "as_of",
                                        "review_date", "start", "end", "valid_from",
                                        "valid_to", "respond_by", "leaves_on", "term_start", "mapped_on"};
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

