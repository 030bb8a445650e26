/*  soffa_wire: envelope and frame codec (the other half of the codec wall). */
#include "soffa_wire.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_msg.pb-c.h"
#include "soffa_wire.pb-c.h"

/* Envelope limit: the message plus a generous header. */
#define S_ENVELOPE_MAX (SOFFA_MSG_MAX + 2048)

void
soffa_wire_hash(const void *buf, size_t len, uint8_t out[SOFFA_HASH_LEN])
{
    crypto_generichash(out, SOFFA_HASH_LEN, buf, len, NULL, 0);
}

/* Copies a decoded string into a fixed buffer; a string that does not fit
 * is an error, never truncated. */
static soffa_err_t
s_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        return SOFFA_ERR_TOO_LARGE;
    memcpy(dst, src ? src : "", n + 1);
    return SOFFA_OK;
}

#define S_TRY(expr)                 \
    do {                            \
        rc = (expr);                \
        if (rc != SOFFA_OK)         \
            goto fail;              \
    } while (0)

/* ---- Envelope ---------------------------------------------------------- */

soffa_err_t
soffa_envelope_encode(const soffa_envelope_t *env, uint8_t **buf, size_t *len)
{
    if (!env || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    Soffa__Sender sender = SOFFA__SENDER__INIT;
    sender.agent = (char *) env->sender_agent;
    sender.role = (Soffa__Role) env->sender_role;
    sender.kommunkod = (char *) env->sender_kommun;
    sender.unit_id = (char *) env->sender_unit;

    Soffa__Envelope e = SOFFA__ENVELOPE__INIT;
    e.version = env->version ? env->version : SOFFA_ENVELOPE_VERSION;
    e.seq = env->seq;
    e.message_id.data = (uint8_t *) env->message_id;
    e.message_id.len = sizeof env->message_id;
    e.sender = &sender;
    e.received_at_us = env->received_at_us;
    e.mailbox = (char *) env->mailbox;
    e.prev_hash.data = (uint8_t *) env->prev_hash;
    e.prev_hash.len = SOFFA_HASH_LEN;
    e.kind = (Soffa__RecordKind) env->kind;
    e.body.data = (uint8_t *) env->body;
    e.body.len = env->body_len;
    if (env->has_subject_key) {
        e.subject_key.data = (uint8_t *) env->subject_key;
        e.subject_key.len = SOFFA_SUBJECT_KEY_LEN;
    }
    e.message_type = env->msg_type;
    size_t n = soffa__envelope__get_packed_size(&e);
    if (n > S_ENVELOPE_MAX)
        return SOFFA_ERR_TOO_LARGE;
    uint8_t *b = malloc(n);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__envelope__pack(&e, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_envelope_decode(const void *buf, size_t len, soffa_envelope_t *out)
{
    soffa_err_t rc = SOFFA_OK;
    memset(out, 0, sizeof *out);
    if (len > S_ENVELOPE_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Envelope *e = soffa__envelope__unpack(NULL, len, buf);
    if (!e)
        return SOFFA_ERR_MALFORMED;
    out->pb_ = e;
    if (e->version != SOFFA_ENVELOPE_VERSION)
        S_TRY(SOFFA_ERR_VERSION);
    if (e->message_id.len != sizeof out->message_id || e->prev_hash.len != SOFFA_HASH_LEN
        || (e->subject_key.len != 0 && e->subject_key.len != SOFFA_SUBJECT_KEY_LEN) || !e->sender)
        S_TRY(SOFFA_ERR_MALFORMED);
    out->version = e->version;
    out->seq = e->seq;
    memcpy(out->message_id, e->message_id.data, sizeof out->message_id);
    S_TRY(s_copy(out->sender_agent, sizeof out->sender_agent, e->sender->agent));
    out->sender_role = (soffa_role_t) e->sender->role;
    S_TRY(s_copy(out->sender_kommun, sizeof out->sender_kommun, e->sender->kommunkod));
    S_TRY(s_copy(out->sender_unit, sizeof out->sender_unit, e->sender->unit_id));
    out->received_at_us = e->received_at_us;
    S_TRY(s_copy(out->mailbox, sizeof out->mailbox, e->mailbox));
    memcpy(out->prev_hash, e->prev_hash.data, SOFFA_HASH_LEN);
    out->kind = (soffa_record_kind_t) e->kind;
    out->body = e->body.data;
    out->body_len = e->body.len;
    if (e->subject_key.len) {
        memcpy(out->subject_key, e->subject_key.data, SOFFA_SUBJECT_KEY_LEN);
        out->has_subject_key = true;
    }
    out->msg_type = e->message_type;
    return SOFFA_OK;
fail:
    soffa_envelope_fini(out);
    return rc;
}

void
soffa_envelope_fini(soffa_envelope_t *env)
{
    if (!env)
        return;
    if (env->pb_)
        soffa__envelope__free_unpacked(env->pb_, NULL);
    memset(env, 0, sizeof *env);
}

/* ---- Access records ------------------------------------------------------ */

soffa_err_t
soffa_access_encode(const soffa_access_t *a, uint8_t **buf, size_t *len)
{
    Soffa__AccessRecord r = SOFFA__ACCESS_RECORD__INIT;
    r.agent = (char *) a->agent;
    r.role = (Soffa__Role) a->role;
    r.request = (char *) a->request;
    r.filter = (char *) a->filter;
    if (a->has_subject_key) {
        r.subject_key.data = (uint8_t *) a->subject_key;
        r.subject_key.len = SOFFA_SUBJECT_KEY_LEN;
    }
    r.records = a->records;
    r.state = (Soffa__AccessState) a->state;
    r.opened_seq = a->opened_seq;
    size_t n = soffa__access_record__get_packed_size(&r);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__access_record__pack(&r, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_access_decode(const void *buf, size_t len, soffa_access_t *out)
{
    soffa_err_t rc = SOFFA_OK;
    memset(out, 0, sizeof *out);
    if (len > S_ENVELOPE_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__AccessRecord *r = soffa__access_record__unpack(NULL, len, buf);
    if (!r)
        return SOFFA_ERR_MALFORMED;
    S_TRY(s_copy(out->agent, sizeof out->agent, r->agent));
    out->role = (soffa_role_t) r->role;
    S_TRY(s_copy(out->request, sizeof out->request, r->request));
    S_TRY(s_copy(out->filter, sizeof out->filter, r->filter));
    if (r->subject_key.len == SOFFA_SUBJECT_KEY_LEN) {
        memcpy(out->subject_key, r->subject_key.data, SOFFA_SUBJECT_KEY_LEN);
        out->has_subject_key = true;
    }
    out->records = r->records;
    out->state = (soffa_access_state_t) r->state;
    out->opened_seq = r->opened_seq;
fail:
    soffa__access_record__free_unpacked(r, NULL);
    return rc;
}

/* ---- Checkpoints --------------------------------------------------------- */

/* The bytes a checkpoint signature covers. */
static size_t
s_checkpoint_text(const soffa_checkpoint_t *cp, uint8_t out[80])
{
    static const char tag[] = "soffa-checkpoint-v1";
    size_t n = sizeof tag - 1;
    memcpy(out, tag, n);
    for (int i = 7; i >= 0; i--)
        out[n++] = (uint8_t) (cp->covers_seq >> (8 * i));
    memcpy(out + n, cp->head_hash, SOFFA_HASH_LEN);
    n += SOFFA_HASH_LEN;
    for (int i = 7; i >= 0; i--)
        out[n++] = (uint8_t) ((uint64_t) cp->at_us >> (8 * i));
    return n;
}

void
soffa_checkpoint_sign(soffa_checkpoint_t *cp, const uint8_t secret[SOFFA_SIGN_SECRET])
{
    uint8_t text[80];
    size_t n = s_checkpoint_text(cp, text);
    crypto_sign_ed25519_sk_to_pk(cp->public_key, secret);
    crypto_sign_detached(cp->signature, NULL, text, n, secret);
}

bool
soffa_checkpoint_valid(const soffa_checkpoint_t *cp, const uint8_t *public_key)
{
    uint8_t text[80];
    size_t n = s_checkpoint_text(cp, text);
    return crypto_sign_verify_detached(cp->signature, text, n, public_key ? public_key : cp->public_key) == 0;
}

soffa_err_t
soffa_checkpoint_encode(const soffa_checkpoint_t *cp, uint8_t **buf, size_t *len)
{
    Soffa__Checkpoint c = SOFFA__CHECKPOINT__INIT;
    c.covers_seq = cp->covers_seq;
    c.head_hash = (ProtobufCBinaryData) {SOFFA_HASH_LEN, (uint8_t *) cp->head_hash};
    c.at_us = cp->at_us;
    c.public_key = (ProtobufCBinaryData) {SOFFA_SIGN_PUBLIC, (uint8_t *) cp->public_key};
    c.signature = (ProtobufCBinaryData) {SOFFA_SIGNATURE, (uint8_t *) cp->signature};
    size_t n = soffa__checkpoint__get_packed_size(&c);
    uint8_t *b = malloc(n);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__checkpoint__pack(&c, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_checkpoint_decode(const void *buf, size_t len, soffa_checkpoint_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > 1024)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Checkpoint *c = soffa__checkpoint__unpack(NULL, len, buf);
    if (!c)
        return SOFFA_ERR_MALFORMED;
    soffa_err_t rc = SOFFA_OK;
    if (c->head_hash.len != SOFFA_HASH_LEN || c->public_key.len != SOFFA_SIGN_PUBLIC
        || c->signature.len != SOFFA_SIGNATURE) {
        rc = SOFFA_ERR_MALFORMED;
    } else {
        out->covers_seq = c->covers_seq;
        memcpy(out->head_hash, c->head_hash.data, SOFFA_HASH_LEN);
        out->at_us = c->at_us;
        memcpy(out->public_key, c->public_key.data, SOFFA_SIGN_PUBLIC);
        memcpy(out->signature, c->signature.data, SOFFA_SIGNATURE);
    }
    soffa__checkpoint__free_unpacked(c, NULL);
    return rc;
}

/* ---- Frames ------------------------------------------------------------ */

static const char *const s_frame_names[] = {
    "none", "hello", "welcome", "publish", "publish-ack", "error", "subscribe", "deliver",
    "ack", "credit", "replay", "replay-end", "ping", "pong", "status-request", "status-reply", "replay-ack"};

const char *
soffa_frame_type_name(soffa_frame_type_t type)
{
    if ((unsigned) type < sizeof s_frame_names / sizeof *s_frame_names)
        return s_frame_names[type];
    return "unknown";
}

soffa_err_t
soffa_frame_encode(const soffa_frame_t *f, uint8_t **buf, size_t *len)
{
    if (!f || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    Soffa__Frame fr = SOFFA__FRAME__INIT;
    /* Every body lives on this stack frame; pack copies what it needs. */
    Soffa__Hello hello = SOFFA__HELLO__INIT;
    Soffa__Welcome welcome = SOFFA__WELCOME__INIT;
    Soffa__Publish publish = SOFFA__PUBLISH__INIT;
    Soffa__PublishAck pack = SOFFA__PUBLISH_ACK__INIT;
    Soffa__Error error = SOFFA__ERROR__INIT;
    Soffa__Subscribe sub = SOFFA__SUBSCRIBE__INIT;
    Soffa__Deliver del = SOFFA__DELIVER__INIT;
    Soffa__Ack ack = SOFFA__ACK__INIT;
    Soffa__Credit credit = SOFFA__CREDIT__INIT;
    Soffa__Replay replay = SOFFA__REPLAY__INIT;
    Soffa__ReplayFilter filter = SOFFA__REPLAY_FILTER__INIT;
    Soffa__ReplayEnd rend = SOFFA__REPLAY_END__INIT;
    Soffa__Ping ping = SOFFA__PING__INIT;
    Soffa__Pong pong = SOFFA__PONG__INIT;
    Soffa__StatusRequest sreq = SOFFA__STATUS_REQUEST__INIT;
    Soffa__StatusReply srep = SOFFA__STATUS_REPLY__INIT;
    Soffa__ReplayAck rack = SOFFA__REPLAY_ACK__INIT;
    char *mb_ptrs[SOFFA_WELCOME_MAX], *km_ptrs[SOFFA_WELCOME_MAX];
    Soffa__MailboxStatus *ms = NULL, **ms_ptrs = NULL;
    soffa_err_t rc = SOFFA_OK;

    switch (f->type) {
    case SOFFA_FRAME_HELLO:
        hello.protocol_version = f->version;
        hello.client = (char *) f->text;
        fr.body_case = SOFFA__FRAME__BODY_HELLO;
        fr.hello = &hello;
        break;
    case SOFFA_FRAME_WELCOME:
        if (f->n_mailboxes > SOFFA_WELCOME_MAX || f->n_kommuner > SOFFA_WELCOME_MAX)
            return SOFFA_ERR_TOO_LARGE;
        welcome.agent = (char *) f->agent;
        welcome.role = (Soffa__Role) f->role;
        for (size_t i = 0; i < f->n_mailboxes; i++)
            mb_ptrs[i] = (char *) f->mailboxes[i];
        for (size_t i = 0; i < f->n_kommuner; i++)
            km_ptrs[i] = (char *) f->kommuner[i];
        welcome.mailboxes = mb_ptrs;
        welcome.n_mailboxes = f->n_mailboxes;
        welcome.kommuner = km_ptrs;
        welcome.n_kommuner = f->n_kommuner;
        welcome.heartbeat_ms = f->heartbeat_ms;
        welcome.max_frame = f->max_frame;
        fr.body_case = SOFFA__FRAME__BODY_WELCOME;
        fr.welcome = &welcome;
        break;
    case SOFFA_FRAME_PUBLISH:
        publish.tag = f->tag;
        publish.message.data = (uint8_t *) f->data;
        publish.message.len = f->data_len;
        fr.body_case = SOFFA__FRAME__BODY_PUBLISH;
        fr.publish = &publish;
        break;
    case SOFFA_FRAME_PUBLISH_ACK:
        pack.tag = f->tag;
        pack.seq = f->seq;
        pack.duplicate = f->duplicate;
        pack.mailbox = (char *) f->mailbox;
        fr.body_case = SOFFA__FRAME__BODY_PUBLISH_ACK;
        fr.publish_ack = &pack;
        break;
    case SOFFA_FRAME_ERROR:
        error.tag = f->tag;
        error.code = f->code;
        error.text = (char *) f->text;
        fr.body_case = SOFFA__FRAME__BODY_ERROR;
        fr.error = &error;
        break;
    case SOFFA_FRAME_SUBSCRIBE:
        sub.mailbox = (char *) f->mailbox;
        sub.credit = f->credit;
        fr.body_case = SOFFA__FRAME__BODY_SUBSCRIBE;
        fr.subscribe = &sub;
        break;
    case SOFFA_FRAME_DELIVER:
        del.seq = f->seq;
        del.mailbox = (char *) f->mailbox;
        del.envelope.data = (uint8_t *) f->data;
        del.envelope.len = f->data_len;
        if (f->has_hash) {
            del.hash.data = (uint8_t *) f->hash;
            del.hash.len = SOFFA_HASH_LEN;
        }
        del.replay_tag = f->tag;
        fr.body_case = SOFFA__FRAME__BODY_DELIVER;
        fr.deliver = &del;
        break;
    case SOFFA_FRAME_ACK:
        ack.mailbox = (char *) f->mailbox;
        ack.seq = f->seq;
        if (f->has_hash) {
            ack.hash.data = (uint8_t *) f->hash;
            ack.hash.len = SOFFA_HASH_LEN;
        }
        fr.body_case = SOFFA__FRAME__BODY_ACK;
        fr.ack = &ack;
        break;
    case SOFFA_FRAME_CREDIT:
        credit.mailbox = (char *) f->mailbox;
        credit.credit = f->credit;
        fr.body_case = SOFFA__FRAME__BODY_CREDIT;
        fr.credit = &credit;
        break;
    case SOFFA_FRAME_REPLAY:
        filter.from_seq = f->filter.from_seq;
        filter.to_seq = f->filter.to_seq;
        filter.from_us = f->filter.from_us;
        filter.to_us = f->filter.to_us;
        filter.mailbox = (char *) f->filter.mailbox;
        filter.subject_id = (char *) f->filter.subject_id;
        filter.message_type = f->filter.message_type;
        filter.limit = f->filter.limit;
        replay.tag = f->tag;
        replay.filter = &filter;
        replay.request = (char *) f->text;
        replay.window = f->credit;
        fr.body_case = SOFFA__FRAME__BODY_REPLAY;
        fr.replay = &replay;
        break;
    case SOFFA_FRAME_REPLAY_END:
        rend.tag = f->tag;
        rend.count = f->count;
        rend.access_seq = f->access_seq;
        fr.body_case = SOFFA__FRAME__BODY_REPLAY_END;
        fr.replay_end = &rend;
        break;
    case SOFFA_FRAME_PING:
        ping.nonce = f->tag;
        fr.body_case = SOFFA__FRAME__BODY_PING;
        fr.ping = &ping;
        break;
    case SOFFA_FRAME_PONG:
        pong.nonce = f->tag;
        fr.body_case = SOFFA__FRAME__BODY_PONG;
        fr.pong = &pong;
        break;
    case SOFFA_FRAME_STATUS_REQUEST:
        sreq.tag = f->tag;
        sreq.receipt = f->receipt;
        fr.body_case = SOFFA__FRAME__BODY_STATUS_REQUEST;
        fr.status_request = &sreq;
        break;
    case SOFFA_FRAME_STATUS_REPLY:
        srep.tag = f->tag;
        srep.head_seq = f->head_seq;
        srep.sessions = f->sessions;
        srep.started_at_us = f->started_at_us;
        srep.receipt = f->receipt;
        if (f->n_statuses) {
            ms = calloc(f->n_statuses, sizeof *ms);
            ms_ptrs = calloc(f->n_statuses, sizeof *ms_ptrs);
            if (!ms || !ms_ptrs) {
                rc = SOFFA_ERR_NOMEM;
                goto out;
            }
            for (size_t i = 0; i < f->n_statuses; i++) {
                const soffa_mailbox_status_t *s = &f->statuses[i];
                soffa__mailbox_status__init(&ms[i]);
                ms[i].mailbox = (char *) s->mailbox;
                ms[i].depth = s->depth;
                ms[i].last_seq = s->last_seq;
                ms[i].consumers = s->consumers;
                ms[i].lag = s->lag;
                ms[i].oldest_undelivered_us = s->oldest_undelivered_us;
                ms[i].no_reader = s->no_reader;
                ms[i].overdue = s->overdue;
                ms_ptrs[i] = &ms[i];
            }
        }
        srep.mailboxes = ms_ptrs;
        srep.n_mailboxes = f->n_statuses;
        fr.body_case = SOFFA__FRAME__BODY_STATUS_REPLY;
        fr.status_reply = &srep;
        break;
    case SOFFA_FRAME_REPLAY_ACK:
        rack.tag = f->tag;
        rack.seq = f->seq;
        rack.hash.data = (uint8_t *) f->hash;
        rack.hash.len = SOFFA_HASH_LEN;
        fr.body_case = SOFFA__FRAME__BODY_REPLAY_ACK;
        fr.replay_ack = &rack;
        break;
    default:
        return SOFFA_ERR_INVALID_ARG;
    }

    size_t n = soffa__frame__get_packed_size(&fr);
    if (n > SOFFA_WIRE_MAX_FRAME) {
        rc = SOFFA_ERR_TOO_LARGE;
        goto out;
    }
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        rc = SOFFA_ERR_NOMEM;
        goto out;
    }
    soffa__frame__pack(&fr, b);
    *buf = b;
    *len = n;
out:
    free(ms);
    free(ms_ptrs);
    return rc;
}

soffa_err_t
soffa_frame_decode(const void *buf, size_t len, soffa_frame_t *out)
{
    soffa_err_t rc = SOFFA_OK;
    memset(out, 0, sizeof *out);
    if (len > SOFFA_WIRE_MAX_FRAME)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Frame *fr = soffa__frame__unpack(NULL, len, buf);
    if (!fr)
        return SOFFA_ERR_MALFORMED;
    out->pb_ = fr;
    switch (fr->body_case) {
    case SOFFA__FRAME__BODY_HELLO:
        out->type = SOFFA_FRAME_HELLO;
        out->version = fr->hello->protocol_version;
        S_TRY(s_copy(out->text, sizeof out->text, fr->hello->client));
        break;
    case SOFFA__FRAME__BODY_WELCOME: {
        const Soffa__Welcome *w = fr->welcome;
        out->type = SOFFA_FRAME_WELCOME;
        S_TRY(s_copy(out->agent, sizeof out->agent, w->agent));
        out->role = (soffa_role_t) w->role;
        if (w->n_mailboxes > SOFFA_WELCOME_MAX || w->n_kommuner > SOFFA_WELCOME_MAX)
            S_TRY(SOFFA_ERR_TOO_LARGE);
        for (size_t i = 0; i < w->n_mailboxes; i++)
            S_TRY(s_copy(out->mailboxes[i], SOFFA_NAME_MAX, w->mailboxes[i]));
        out->n_mailboxes = w->n_mailboxes;
        for (size_t i = 0; i < w->n_kommuner; i++)
            S_TRY(s_copy(out->kommuner[i], 5, w->kommuner[i]));
        out->n_kommuner = w->n_kommuner;
        out->heartbeat_ms = w->heartbeat_ms;
        out->max_frame = w->max_frame;
        break;
    }
    case SOFFA__FRAME__BODY_PUBLISH:
        out->type = SOFFA_FRAME_PUBLISH;
        out->tag = fr->publish->tag;
        out->data = fr->publish->message.data;
        out->data_len = fr->publish->message.len;
        break;
    case SOFFA__FRAME__BODY_PUBLISH_ACK:
        out->type = SOFFA_FRAME_PUBLISH_ACK;
        out->tag = fr->publish_ack->tag;
        out->seq = fr->publish_ack->seq;
        out->duplicate = fr->publish_ack->duplicate;
        S_TRY(s_copy(out->mailbox, sizeof out->mailbox, fr->publish_ack->mailbox));
        break;
    case SOFFA__FRAME__BODY_ERROR:
        out->type = SOFFA_FRAME_ERROR;
        out->tag = fr->error->tag;
        out->code = fr->error->code;
        S_TRY(s_copy(out->text, sizeof out->text, fr->error->text));
        break;
    case SOFFA__FRAME__BODY_SUBSCRIBE:
        out->type = SOFFA_FRAME_SUBSCRIBE;
        S_TRY(s_copy(out->mailbox, sizeof out->mailbox, fr->subscribe->mailbox));
        out->credit = fr->subscribe->credit;
        break;
    case SOFFA__FRAME__BODY_DELIVER:
        out->type = SOFFA_FRAME_DELIVER;
        out->seq = fr->deliver->seq;
        S_TRY(s_copy(out->mailbox, sizeof out->mailbox, fr->deliver->mailbox));
        out->data = fr->deliver->envelope.data;
        out->data_len = fr->deliver->envelope.len;
        if (fr->deliver->hash.len) {
            if (fr->deliver->hash.len != SOFFA_HASH_LEN)
                S_TRY(SOFFA_ERR_MALFORMED);
            memcpy(out->hash, fr->deliver->hash.data, SOFFA_HASH_LEN);
            out->has_hash = true;
        }
        out->tag = fr->deliver->replay_tag;
        break;
    case SOFFA__FRAME__BODY_ACK:
        out->type = SOFFA_FRAME_ACK;
        S_TRY(s_copy(out->mailbox, sizeof out->mailbox, fr->ack->mailbox));
        out->seq = fr->ack->seq;
        if (fr->ack->hash.len) {
            if (fr->ack->hash.len != SOFFA_HASH_LEN)
                S_TRY(SOFFA_ERR_MALFORMED);
            memcpy(out->hash, fr->ack->hash.data, SOFFA_HASH_LEN);
            out->has_hash = true;
        }
        break;
    case SOFFA__FRAME__BODY_CREDIT:
        out->type = SOFFA_FRAME_CREDIT;
        S_TRY(s_copy(out->mailbox, sizeof out->mailbox, fr->credit->mailbox));
        out->credit = fr->credit->credit;
        break;
    case SOFFA__FRAME__BODY_REPLAY: {
        out->type = SOFFA_FRAME_REPLAY;
        out->tag = fr->replay->tag;
        S_TRY(s_copy(out->text, sizeof out->text, fr->replay->request));
        out->credit = fr->replay->window;
        const Soffa__ReplayFilter *fl = fr->replay->filter;
        if (fl) {
            out->filter.from_seq = fl->from_seq;
            out->filter.to_seq = fl->to_seq;
            out->filter.from_us = fl->from_us;
            out->filter.to_us = fl->to_us;
            S_TRY(s_copy(out->filter.mailbox, sizeof out->filter.mailbox, fl->mailbox));
            S_TRY(s_copy(out->filter.subject_id, sizeof out->filter.subject_id, fl->subject_id));
            out->filter.message_type = fl->message_type;
            out->filter.limit = fl->limit;
        }
        break;
    }
    case SOFFA__FRAME__BODY_REPLAY_END:
        out->type = SOFFA_FRAME_REPLAY_END;
        out->tag = fr->replay_end->tag;
        out->count = fr->replay_end->count;
        out->access_seq = fr->replay_end->access_seq;
        break;
    case SOFFA__FRAME__BODY_PING:
        out->type = SOFFA_FRAME_PING;
        out->tag = fr->ping->nonce;
        break;
    case SOFFA__FRAME__BODY_PONG:
        out->type = SOFFA_FRAME_PONG;
        out->tag = fr->pong->nonce;
        break;
    case SOFFA__FRAME__BODY_STATUS_REQUEST:
        out->type = SOFFA_FRAME_STATUS_REQUEST;
        out->tag = fr->status_request->tag;
        out->receipt = fr->status_request->receipt;
        break;
    case SOFFA__FRAME__BODY_REPLAY_ACK:
        out->type = SOFFA_FRAME_REPLAY_ACK;
        out->tag = fr->replay_ack->tag;
        out->seq = fr->replay_ack->seq;
        if (fr->replay_ack->hash.len != SOFFA_HASH_LEN)
            S_TRY(SOFFA_ERR_MALFORMED);
        memcpy(out->hash, fr->replay_ack->hash.data, SOFFA_HASH_LEN);
        out->has_hash = true;
        break;
    case SOFFA__FRAME__BODY_STATUS_REPLY: {
        const Soffa__StatusReply *r = fr->status_reply;
        out->type = SOFFA_FRAME_STATUS_REPLY;
        out->tag = r->tag;
        out->head_seq = r->head_seq;
        out->sessions = r->sessions;
        out->started_at_us = r->started_at_us;
        out->receipt = r->receipt;
        if (r->n_mailboxes) {
            out->statuses = calloc(r->n_mailboxes, sizeof *out->statuses);
            if (!out->statuses)
                S_TRY(SOFFA_ERR_NOMEM);
            out->n_statuses = r->n_mailboxes;
            for (size_t i = 0; i < r->n_mailboxes; i++) {
                const Soffa__MailboxStatus *m = r->mailboxes[i];
                soffa_mailbox_status_t *s = &out->statuses[i];
                S_TRY(s_copy(s->mailbox, sizeof s->mailbox, m->mailbox));
                s->depth = m->depth;
                s->last_seq = m->last_seq;
                s->consumers = m->consumers;
                s->lag = m->lag;
                s->oldest_undelivered_us = m->oldest_undelivered_us;
                s->no_reader = m->no_reader;
                s->overdue = m->overdue;
            }
        }
        break;
    }
    default:
        S_TRY(SOFFA_ERR_MALFORMED);
    }
    return SOFFA_OK;
fail:
    return rc;
}

void
soffa_frame_fini(soffa_frame_t *f)
{
    if (!f)
        return;
    if (f->pb_) {
        soffa__frame__free_unpacked(f->pb_, NULL);
        free(f->statuses);   /* owned only when decoded */
    }
    memset(f, 0, sizeof *f);
}
