/*  soffa_record: envelope and message to JSON, and a one-line summary. */
#include "soffa_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_disposal.h"
#include "soffa_msg.h"
#include "soffa_restore.h"
#include "soffa_retention.h"
#include "soffa_time.h"
#include "soffa_wire.h"

static json_t *
s_hex(const uint8_t *b, size_t n)
{
    char s[2 * 64 + 1];
    static const char hex[] = "0123456789abcdef";
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = hex[b[i] >> 4];
        s[2 * i + 1] = hex[b[i] & 15];
    }
    s[2 * n] = '\0';
    return json_string(s);
}

json_t *
soffa_record_json(const uint8_t *env, size_t len, const uint8_t *hash, const uint8_t *key)
{
    soffa_envelope_t e;
    soffa_err_t orc = soffa_envelope_open(env, len, key, &e);
    if (orc != SOFFA_OK && orc != SOFFA_ERR_DISPOSED)
        return NULL;
    bool disposed = orc == SOFFA_ERR_DISPOSED;
    char ts[32];
    soffa_time_format(e.received_at_us, ts);
    const char *kind = e.kind == SOFFA_RK_ACCESS       ? "access"
                       : e.kind == SOFFA_RK_CHECKPOINT ? "checkpoint"
                       : e.kind == SOFFA_RK_DISPOSAL   ? "disposal"
                       : e.kind == SOFFA_RK_AGGREGATE  ? "aggregate"
                       : e.kind == SOFFA_RK_RESTORE    ? "restore"
                                                       : "message";
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:{s:s, s:s, s:s, s:s}}", "seq", (json_int_t) e.seq, "mailbox",
                          e.mailbox, "kind", kind, "received_at", ts,
                          "received_at_us", (json_int_t) e.received_at_us, "sender", "agent", e.sender_agent, "role",
                          soffa_role_name(e.sender_role), "kommun", e.sender_kommun, "unit", e.sender_unit);
    if (!o) {
        soffa_envelope_fini(&e);
        return NULL;
    }
    if (hash)
        json_object_set_new(o, "hash", s_hex(hash, SOFFA_HASH_LEN));
    json_object_set_new(o, "prev_hash", s_hex(e.prev_hash, SOFFA_HASH_LEN));
    if (disposed) {
        /* What is left of a record disposed of: its clear envelope. */
        json_object_set_new(o, "disposed", json_true());
        if (e.kind == SOFFA_RK_MESSAGE)
            json_object_set_new(o, "type", json_string(soffa_msg_type_name((soffa_msg_type_t) e.msg_type)));
        else
            json_object_set_new(o, "type", json_string(kind));
    } else if (e.kind == SOFFA_RK_MESSAGE) {
        json_object_set_new(o, "type", json_string(soffa_msg_type_name((soffa_msg_type_t) e.msg_type)));
        soffa_msg_t *m = NULL;
        if (soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
            char *s = soffa_msg_to_json(m);
            json_t *mj = s ? json_loads(s, 0, NULL) : NULL;
            if (mj)
                json_object_set_new(o, "message", mj);
            free(s);
        }
        soffa_msg_destroy(&m);
    } else if (e.kind == SOFFA_RK_CHECKPOINT) {
        json_object_set_new(o, "type", json_string("checkpoint"));
        soffa_checkpoint_t cp;
        if (soffa_checkpoint_decode(e.body, e.body_len, &cp) == SOFFA_OK)
            json_object_set_new(o, "checkpoint", json_pack("{s:I, s:o, s:o}", "covers_seq", (json_int_t) cp.covers_seq,
                                                           "head_hash", s_hex(cp.head_hash, SOFFA_HASH_LEN),
                                                           "signature", s_hex(cp.signature, SOFFA_SIGNATURE)));
    } else if (e.kind == SOFFA_RK_AGGREGATE) {
        json_object_set_new(o, "type", json_string("aggregate"));
        json_t *aj = json_loadb((const char *) e.body, e.body_len, 0, NULL);
        if (aj)
            json_object_set_new(o, "aggregate", aj);
    } else if (e.kind == SOFFA_RK_DISPOSAL) {
        json_object_set_new(o, "type", json_string("disposal"));
        soffa_disposal_t d;
        if (soffa_disposal_decode(e.body, e.body_len, &d) == SOFFA_OK) {
            json_t *seqs = json_array();
            for (size_t i = 0; i < d.count; i++)
                json_array_append_new(seqs, json_integer((json_int_t) d.seqs[i]));
            json_t *dj = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "rule",
                                   d.rule == SOFFA_DR_ERASURE ? "erasure" : "retention", "class",
                                   soffa_retention_class_name((soffa_retention_class_t) d.retention_class), "rule_text",
                                   d.rule_text, "count", (json_int_t) d.count, "for_mailbox", d.for_mailbox, "seqs", seqs);
            if (d.rule == SOFFA_DR_ERASURE)
                json_object_set_new(dj, "reason", json_string(soffa_erasure_reason_name(d.reason)));
            if (d.has_tombstone)
                json_object_set_new(dj, "tombstone", s_hex(d.tombstone, SOFFA_TOMBSTONE_LEN));
            json_object_set_new(o, "disposal", dj);
            soffa_disposal_fini(&d);
        }
    } else if (e.kind == SOFFA_RK_RESTORE) {
        json_object_set_new(o, "type", json_string("restore"));
        soffa_restore_t r;
        if (soffa_restore_decode(e.body, e.body_len, &r) == SOFFA_OK) {
            char taken[32], restored[32];
            soffa_time_format(r.backup_at_us, taken);
            soffa_time_format(r.restored_at_us, restored);
            json_object_set_new(o, "restore", json_pack("{s:I, s:s, s:s}", "from_seq", (json_int_t) r.from_seq,
                                                        "backup_taken_at", taken, "restored_at", restored));
        }
    } else if (e.kind == SOFFA_RK_ACCESS) {
        json_object_set_new(o, "type", json_string("access"));
        soffa_access_t a;
        if (soffa_access_decode(e.body, e.body_len, &a) == SOFFA_OK)
            json_object_set_new(o, "access",
                                json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "agent", a.agent, "role",
                                          soffa_role_name(a.role), "request", a.request, "filter", a.filter, "records",
                                          (json_int_t) a.records, "state",
                                          a.state == SOFFA_ACCESS_OPENED      ? "opened"
                                          : a.state == SOFFA_ACCESS_CUT_OFF   ? "cut_off"
                                          : a.state == SOFFA_ACCESS_COMPLETED ? "completed"
                                                                              : "unknown",
                                          "opened_seq", (json_int_t) a.opened_seq));
    }
    soffa_envelope_fini(&e);
    return o;
}

void
soffa_record_line(json_t *rec, char *out, size_t outlen)
{
    const char *ts = json_string_value(json_object_get(rec, "received_at"));
    const char *type = json_string_value(json_object_get(rec, "type"));
    const char *from = json_string_value(json_object_get(json_object_get(rec, "sender"), "agent"));
    json_t *m = json_object_get(rec, "message");
    json_t *subj = json_object_get(m, "subject");
    const char *pid = json_string_value(json_object_get(subj, "id"));
    const char *hem = json_string_value(json_object_get(subj, "hemkommun"));
    /* People read Swedish time. */
    char when[32] = "";
    json_int_t at = json_integer_value(json_object_get(rec, "received_at_us"));
    if (at)
        soffa_time_format_local(at, when);
    else if (ts)
        snprintf(when, sizeof when, "%.10s %.5s", ts, ts + 11);
    if (json_is_true(json_object_get(rec, "disposed"))) {
        snprintf(out, outlen, "seq %-6lld %s  %-24s from %-12s to %-18s disposed of: its content no longer exists",
                 (long long) json_integer_value(json_object_get(rec, "seq")), when, type ? type : "?", from ? from : "?",
                 json_string_value(json_object_get(rec, "mailbox")));
        return;
    }
    json_t *ag = json_object_get(rec, "aggregate");
    if (ag) {
        snprintf(out, outlen, "seq %-6lld %s  %-24s key figures of %s for %s..%s, kept before gallring",
                 (long long) json_integer_value(json_object_get(rec, "seq")), when, "aggregate",
                 json_string_value(json_object_get(ag, "municipality")), json_string_value(json_object_get(ag, "from")),
                 json_string_value(json_object_get(ag, "to")));
        return;
    }
    json_t *dj = json_object_get(rec, "disposal");
    if (dj) {
        const char *rule = json_string_value(json_object_get(dj, "rule"));
        bool erasure = rule && !strcmp(rule, "erasure");
        snprintf(out, outlen, "seq %-6lld %s  %-24s %lld record(s) of %s (%s) %s%s%s", (long long) json_integer_value(json_object_get(rec, "seq")),
                 when, erasure ? "erased" : "disposed of", (long long) json_integer_value(json_object_get(dj, "count")),
                 json_string_value(json_object_get(dj, "for_mailbox")), json_string_value(json_object_get(dj, "class")),
                 erasure ? "on request, reason " : "under the rule ",
                 erasure ? json_string_value(json_object_get(dj, "reason")) : json_string_value(json_object_get(dj, "rule_text")),
                 erasure ? "" : " ([retention])");
        return;
    }
    if (json_object_get(rec, "checkpoint")) {
        snprintf(out, outlen, "seq %-6lld %s  %-24s vouches for 1..%lld", (long long) json_integer_value(json_object_get(rec, "seq")),
                 when, "signed checkpoint",
                 (long long) json_integer_value(json_object_get(json_object_get(rec, "checkpoint"), "covers_seq")));
        return;
    }
    if (json_object_get(rec, "restore")) {
        json_t *r = json_object_get(rec, "restore");
        snprintf(out, outlen, "seq %-6lld %s  %-24s restored from a backup taken at %s: the history before ends at %lld",
                 (long long) json_integer_value(json_object_get(rec, "seq")), when, "restore",
                 json_string_value(json_object_get(r, "backup_taken_at")),
                 (long long) json_integer_value(json_object_get(r, "from_seq")));
        return;
    }
    if (json_object_get(rec, "access")) {
        json_t *a = json_object_get(rec, "access");
        const char *state = json_string_value(json_object_get(a, "state"));
        if (state && !strcmp(state, "opened"))
            snprintf(out, outlen, "seq %-6lld %s  %-24s %s opened a read (%s): %s",
                     (long long) json_integer_value(json_object_get(rec, "seq")), when, "access",
                     json_string_value(json_object_get(a, "agent")), json_string_value(json_object_get(a, "request")),
                     json_string_value(json_object_get(a, "filter")));
        else {
            /* Whose records: the data controller of the access log it is in. */
            const char *mb = json_string_value(json_object_get(rec, "mailbox"));
            const char *of = mb && !strncmp(mb, "audit/access/", 13) ? mb + 13 : "soffa";
            snprintf(out, outlen, "seq %-6lld %s  %-24s %s read %lld record(s) of %s%s: %s",
                     (long long) json_integer_value(json_object_get(rec, "seq")), when, "access",
                     json_string_value(json_object_get(a, "agent")), (long long) json_integer_value(json_object_get(a, "records")),
                     of, state && !strcmp(state, "cut_off") ? " before it was cut off" : "",
                     json_string_value(json_object_get(a, "filter")));
        }
        return;
    }
    snprintf(out, outlen, "seq %-6lld %s  %-24s from %-12s to %-18s pupil %s (%s)",
             (long long) json_integer_value(json_object_get(rec, "seq")), when, type ? type : "?", from ? from : "?",
             json_string_value(json_object_get(rec, "mailbox")), pid ? pid : "-", hem ? hem : "-");
}
