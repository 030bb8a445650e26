/*  soffa_frame: the broker protocol's frames (see soffa_frame.h). */
#include "soffa_frame.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_wire.pb-c.h"

/* What an encoder fills: the frame and, on the caller's stack, its body and
 * the arrays the body points into (pack copies what it needs). */
typedef struct {
    Soffa__Frame fr;
    union {
        Soffa__Hello hello;
        Soffa__Welcome welcome;
        Soffa__Publish publish;
        Soffa__PublishAck publish_ack;
        Soffa__Error error;
        Soffa__Subscribe subscribe;
        Soffa__Deliver deliver;
        Soffa__Ack ack;
        Soffa__Credit credit;
        Soffa__Replay replay;
        Soffa__ReplayEnd replay_end;
        Soffa__Ping ping;
        Soffa__Pong pong;
        Soffa__StatusRequest status_request;
        Soffa__StatusReply status_reply;
        Soffa__ReplayAck replay_ack;
        Soffa__PublishBatch publish_batch;
        Soffa__PublishAcks publish_acks;
        Soffa__DeliverBatch deliver_batch;
        Soffa__Erase erase;
        Soffa__Erased erased;
    } b;
    Soffa__ReplayFilter filter;
    char *mailboxes[SOFFA_WELCOME_MAX], *kommuner[SOFFA_WELCOME_MAX];
    Soffa__MailboxStatus *ms, **ms_ptrs;   /* status reply: freed after packing */
    void *items, **item_ptrs;              /* batch frames: freed after packing */
    void *items2, **item_ptrs2;            /* publish acks: the refusals */
} s_enc_t;

typedef soffa_err_t (*s_encode_fn)(const soffa_frame_t *f, s_enc_t *e);
typedef soffa_err_t (*s_decode_fn)(const Soffa__Frame *fr, soffa_frame_t *out);

/* A hash field: absent, or exactly SOFFA_HASH_LEN bytes. */
static void
s_hash_put(ProtobufCBinaryData *b, const soffa_frame_t *f)
{
    if (f->has_hash)
        *b = (ProtobufCBinaryData) {SOFFA_HASH_LEN, (uint8_t *) f->hash};
}

static soffa_err_t
s_hash_get(ProtobufCBinaryData b, soffa_frame_t *out, bool required)
{
    if (b.len == 0 && !required)
        return SOFFA_OK;
    if (b.len != SOFFA_HASH_LEN)
        return SOFFA_ERR_MALFORMED;
    memcpy(out->hash, b.data, SOFFA_HASH_LEN);
    out->has_hash = true;
    return SOFFA_OK;
}

/* ---- One encoder and one decoder per frame type ---------------------------- */

static soffa_err_t
s_enc_hello(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Hello *b = &e->b.hello;
    soffa__hello__init(b);
    b->protocol_version = f->version;
    b->client = (char *) f->text;
    e->fr.hello = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_hello(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->version = fr->hello->protocol_version;
    return soffa_wire_copy(out->text, sizeof out->text, fr->hello->client);
}

static soffa_err_t
s_enc_welcome(const soffa_frame_t *f, s_enc_t *e)
{
    if (f->n_mailboxes > SOFFA_WELCOME_MAX || f->n_kommuner > SOFFA_WELCOME_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Welcome *b = &e->b.welcome;
    soffa__welcome__init(b);
    b->agent = (char *) f->agent;
    b->role = (Soffa__Role) f->role;
    for (size_t i = 0; i < f->n_mailboxes; i++)
        e->mailboxes[i] = (char *) f->mailboxes[i];
    for (size_t i = 0; i < f->n_kommuner; i++)
        e->kommuner[i] = (char *) f->kommuner[i];
    b->mailboxes = e->mailboxes;
    b->n_mailboxes = f->n_mailboxes;
    b->kommuner = e->kommuner;
    b->n_kommuner = f->n_kommuner;
    b->heartbeat_ms = f->heartbeat_ms;
    b->max_frame = f->max_frame;
    b->protocol_version = f->version;
    b->batch_max = f->batch_max;
    e->fr.welcome = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_welcome(const Soffa__Frame *fr, soffa_frame_t *out)
{
    const Soffa__Welcome *w = fr->welcome;
    soffa_err_t rc = soffa_wire_copy(out->agent, sizeof out->agent, w->agent);
    if (rc != SOFFA_OK)
        return rc;
    out->role = (soffa_role_t) w->role;
    if (w->n_mailboxes > SOFFA_WELCOME_MAX || w->n_kommuner > SOFFA_WELCOME_MAX)
        return SOFFA_ERR_TOO_LARGE;
    for (size_t i = 0; rc == SOFFA_OK && i < w->n_mailboxes; i++)
        rc = soffa_wire_copy(out->mailboxes[i], SOFFA_NAME_MAX, w->mailboxes[i]);
    out->n_mailboxes = w->n_mailboxes;
    for (size_t i = 0; rc == SOFFA_OK && i < w->n_kommuner; i++)
        rc = soffa_wire_copy(out->kommuner[i], 5, w->kommuner[i]);
    out->n_kommuner = w->n_kommuner;
    out->heartbeat_ms = w->heartbeat_ms;
    out->max_frame = w->max_frame;
    out->version = w->protocol_version ? w->protocol_version : 1;   /* a broker before version 2 says nothing */
    out->batch_max = w->batch_max;
    return rc;
}

static soffa_err_t
s_enc_publish(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Publish *b = &e->b.publish;
    soffa__publish__init(b);
    b->tag = f->tag;
    b->message = (ProtobufCBinaryData) {f->data_len, (uint8_t *) f->data};
    e->fr.publish = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_publish(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->publish->tag;
    out->data = fr->publish->message.data;
    out->data_len = fr->publish->message.len;
    return SOFFA_OK;
}

static soffa_err_t
s_enc_publish_ack(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__PublishAck *b = &e->b.publish_ack;
    soffa__publish_ack__init(b);
    b->tag = f->tag;
    b->seq = f->seq;
    b->duplicate = f->duplicate;
    b->mailbox = (char *) f->mailbox;
    e->fr.publish_ack = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_publish_ack(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->publish_ack->tag;
    out->seq = fr->publish_ack->seq;
    out->duplicate = fr->publish_ack->duplicate;
    return soffa_wire_copy(out->mailbox, sizeof out->mailbox, fr->publish_ack->mailbox);
}

static soffa_err_t
s_enc_error(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Error *b = &e->b.error;
    soffa__error__init(b);
    b->tag = f->tag;
    b->code = f->code;
    b->text = (char *) f->text;
    e->fr.error = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_error(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->error->tag;
    out->code = fr->error->code;
    return soffa_wire_copy(out->text, sizeof out->text, fr->error->text);
}

static soffa_err_t
s_enc_subscribe(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Subscribe *b = &e->b.subscribe;
    soffa__subscribe__init(b);
    b->mailbox = (char *) f->mailbox;
    b->credit = f->credit;
    e->fr.subscribe = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_subscribe(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->credit = fr->subscribe->credit;
    return soffa_wire_copy(out->mailbox, sizeof out->mailbox, fr->subscribe->mailbox);
}

static soffa_err_t
s_enc_deliver(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Deliver *b = &e->b.deliver;
    soffa__deliver__init(b);
    b->seq = f->seq;
    b->mailbox = (char *) f->mailbox;
    b->envelope = (ProtobufCBinaryData) {f->data_len, (uint8_t *) f->data};
    s_hash_put(&b->hash, f);
    b->replay_tag = f->tag;
    if (f->has_record_key)
        b->record_key = (ProtobufCBinaryData) {SOFFA_RECORD_KEY_LEN, (uint8_t *) f->record_key};
    e->fr.deliver = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_deliver(const Soffa__Frame *fr, soffa_frame_t *out)
{
    const Soffa__Deliver *d = fr->deliver;
    out->seq = d->seq;
    out->data = d->envelope.data;
    out->data_len = d->envelope.len;
    out->tag = d->replay_tag;
    if (d->record_key.len != 0 && d->record_key.len != SOFFA_RECORD_KEY_LEN)
        return SOFFA_ERR_MALFORMED;
    if (d->record_key.len) {
        memcpy(out->record_key, d->record_key.data, SOFFA_RECORD_KEY_LEN);
        out->has_record_key = true;
    }
    soffa_err_t rc = soffa_wire_copy(out->mailbox, sizeof out->mailbox, d->mailbox);
    return rc != SOFFA_OK ? rc : s_hash_get(d->hash, out, false);
}

static soffa_err_t
s_enc_ack(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Ack *b = &e->b.ack;
    soffa__ack__init(b);
    b->mailbox = (char *) f->mailbox;
    b->seq = f->seq;
    s_hash_put(&b->hash, f);
    e->fr.ack = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_ack(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->seq = fr->ack->seq;
    soffa_err_t rc = soffa_wire_copy(out->mailbox, sizeof out->mailbox, fr->ack->mailbox);
    return rc != SOFFA_OK ? rc : s_hash_get(fr->ack->hash, out, false);
}

static soffa_err_t
s_enc_credit(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Credit *b = &e->b.credit;
    soffa__credit__init(b);
    b->mailbox = (char *) f->mailbox;
    b->credit = f->credit;
    e->fr.credit = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_credit(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->credit = fr->credit->credit;
    return soffa_wire_copy(out->mailbox, sizeof out->mailbox, fr->credit->mailbox);
}

static soffa_err_t
s_enc_replay(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__ReplayFilter *fl = &e->filter;
    soffa__replay_filter__init(fl);
    fl->from_seq = f->filter.from_seq;
    fl->to_seq = f->filter.to_seq;
    fl->from_us = f->filter.from_us;
    fl->to_us = f->filter.to_us;
    fl->mailbox = (char *) f->filter.mailbox;
    fl->subject_id = (char *) f->filter.subject_id;
    fl->message_type = f->filter.message_type;
    fl->limit = f->filter.limit;
    Soffa__Replay *b = &e->b.replay;
    soffa__replay__init(b);
    b->tag = f->tag;
    b->filter = fl;
    b->request = (char *) f->text;
    b->window = f->credit;
    e->fr.replay = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_replay(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->replay->tag;
    out->credit = fr->replay->window;
    soffa_err_t rc = soffa_wire_copy(out->text, sizeof out->text, fr->replay->request);
    const Soffa__ReplayFilter *fl = fr->replay->filter;
    if (rc != SOFFA_OK || !fl)
        return rc;
    out->filter.from_seq = fl->from_seq;
    out->filter.to_seq = fl->to_seq;
    out->filter.from_us = fl->from_us;
    out->filter.to_us = fl->to_us;
    out->filter.message_type = fl->message_type;
    out->filter.limit = fl->limit;
    rc = soffa_wire_copy(out->filter.mailbox, sizeof out->filter.mailbox, fl->mailbox);
    if (rc == SOFFA_OK)
        rc = soffa_wire_copy(out->filter.subject_id, sizeof out->filter.subject_id, fl->subject_id);
    return rc;
}

static soffa_err_t
s_enc_replay_end(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__ReplayEnd *b = &e->b.replay_end;
    soffa__replay_end__init(b);
    b->tag = f->tag;
    b->count = f->count;
    b->access_seq = f->access_seq;
    e->fr.replay_end = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_replay_end(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->replay_end->tag;
    out->count = fr->replay_end->count;
    out->access_seq = fr->replay_end->access_seq;
    return SOFFA_OK;
}

static soffa_err_t
s_enc_erase(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Erase *b = &e->b.erase;
    soffa__erase__init(b);
    b->tag = f->tag;
    b->subject_id = (char *) f->filter.subject_id;
    b->reason = f->code;
    e->fr.erase = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_erase(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->erase->tag;
    out->code = fr->erase->reason;
    return soffa_wire_copy(out->filter.subject_id, sizeof out->filter.subject_id, fr->erase->subject_id);
}

static soffa_err_t
s_enc_erased(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__Erased *b = &e->b.erased;
    soffa__erased__init(b);
    b->tag = f->tag;
    b->count = f->count;
    b->first_seq = f->seq;
    b->last_seq = f->access_seq;
    e->fr.erased = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_erased(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->erased->tag;
    out->count = fr->erased->count;
    out->seq = fr->erased->first_seq;
    out->access_seq = fr->erased->last_seq;
    return SOFFA_OK;
}

static soffa_err_t
s_enc_ping(const soffa_frame_t *f, s_enc_t *e)
{
    soffa__ping__init(&e->b.ping);
    e->b.ping.nonce = f->tag;
    e->fr.ping = &e->b.ping;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_ping(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->ping->nonce;
    return SOFFA_OK;
}

static soffa_err_t
s_enc_pong(const soffa_frame_t *f, s_enc_t *e)
{
    soffa__pong__init(&e->b.pong);
    e->b.pong.nonce = f->tag;
    e->fr.pong = &e->b.pong;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_pong(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->pong->nonce;
    return SOFFA_OK;
}

static soffa_err_t
s_enc_status_request(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__StatusRequest *b = &e->b.status_request;
    soffa__status_request__init(b);
    b->tag = f->tag;
    b->receipt = f->receipt;
    e->fr.status_request = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_status_request(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->status_request->tag;
    out->receipt = fr->status_request->receipt;
    return SOFFA_OK;
}

static soffa_err_t
s_enc_status_reply(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__StatusReply *b = &e->b.status_reply;
    soffa__status_reply__init(b);
    b->tag = f->tag;
    b->head_seq = f->head_seq;
    b->sessions = f->sessions;
    b->started_at_us = f->started_at_us;
    b->receipt = f->receipt;
    if (f->n_statuses) {
        e->ms = calloc(f->n_statuses, sizeof *e->ms);
        e->ms_ptrs = calloc(f->n_statuses, sizeof *e->ms_ptrs);
        if (!e->ms || !e->ms_ptrs)
            return SOFFA_ERR_NOMEM;
        for (size_t i = 0; i < f->n_statuses; i++) {
            const soffa_mailbox_status_t *s = &f->statuses[i];
            Soffa__MailboxStatus *m = &e->ms[i];
            soffa__mailbox_status__init(m);
            m->mailbox = (char *) s->mailbox;
            m->depth = s->depth;
            m->last_seq = s->last_seq;
            m->consumers = s->consumers;
            m->lag = s->lag;
            m->oldest_undelivered_us = s->oldest_undelivered_us;
            m->no_reader = s->no_reader;
            m->overdue = s->overdue;
            e->ms_ptrs[i] = m;
        }
    }
    b->mailboxes = e->ms_ptrs;
    b->n_mailboxes = f->n_statuses;
    e->fr.status_reply = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_status_reply(const Soffa__Frame *fr, soffa_frame_t *out)
{
    const Soffa__StatusReply *r = fr->status_reply;
    out->tag = r->tag;
    out->head_seq = r->head_seq;
    out->sessions = r->sessions;
    out->started_at_us = r->started_at_us;
    out->receipt = r->receipt;
    if (!r->n_mailboxes)
        return SOFFA_OK;
    out->statuses = calloc(r->n_mailboxes, sizeof *out->statuses);
    if (!out->statuses)
        return SOFFA_ERR_NOMEM;
    out->n_statuses = r->n_mailboxes;
    for (size_t i = 0; i < r->n_mailboxes; i++) {
        const Soffa__MailboxStatus *m = r->mailboxes[i];
        soffa_mailbox_status_t *s = &out->statuses[i];
        s->depth = m->depth;
        s->last_seq = m->last_seq;
        s->consumers = m->consumers;
        s->lag = m->lag;
        s->oldest_undelivered_us = m->oldest_undelivered_us;
        s->no_reader = m->no_reader;
        s->overdue = m->overdue;
        soffa_err_t rc = soffa_wire_copy(s->mailbox, sizeof s->mailbox, m->mailbox);
        if (rc != SOFFA_OK)
            return rc;
    }
    return SOFFA_OK;
}

static soffa_err_t
s_enc_replay_ack(const soffa_frame_t *f, s_enc_t *e)
{
    Soffa__ReplayAck *b = &e->b.replay_ack;
    soffa__replay_ack__init(b);
    b->tag = f->tag;
    b->seq = f->seq;
    b->hash = (ProtobufCBinaryData) {SOFFA_HASH_LEN, (uint8_t *) f->hash};   /* always carries one */
    e->fr.replay_ack = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_replay_ack(const Soffa__Frame *fr, soffa_frame_t *out)
{
    out->tag = fr->replay_ack->tag;
    out->seq = fr->replay_ack->seq;
    return s_hash_get(fr->replay_ack->hash, out, true);
}

/* ---- Batch frames (protocol 2) ----------------------------------------------- */

/* Room for n items of size sz and their pointers, freed after packing. */
static bool
s_enc_items(void **arr, void ***ptrs, size_t n, size_t sz)
{
    *arr = calloc(n ? n : 1, sz);
    *ptrs = calloc(n ? n : 1, sizeof **ptrs);
    return *arr && *ptrs;
}

/* The items of a decoded batch frame: between 1 and SOFFA_BATCH_MAX. */
static soffa_err_t
s_dec_items(soffa_frame_t *out, size_t n)
{
    if (n == 0)
        return SOFFA_ERR_MALFORMED;
    if (n > SOFFA_BATCH_MAX)
        return SOFFA_ERR_TOO_LARGE;
    out->items = calloc(n, sizeof *out->items);
    if (!out->items)
        return SOFFA_ERR_NOMEM;
    out->n_items = n;
    return SOFFA_OK;
}

/* A decoded string that must fit cap bytes with its NUL ("" for NULL). */
static soffa_err_t
s_dec_str(const char *in, size_t cap, const char **out)
{
    *out = in ? in : "";
    return strlen(*out) < cap ? SOFFA_OK : SOFFA_ERR_TOO_LARGE;
}

static soffa_err_t
s_enc_publish_batch(const soffa_frame_t *f, s_enc_t *e)
{
    if (f->n_items == 0 || f->n_items > SOFFA_BATCH_MAX)
        return SOFFA_ERR_INVALID_ARG;
    if (!s_enc_items(&e->items, &e->item_ptrs, f->n_items, sizeof(Soffa__Publish)))
        return SOFFA_ERR_NOMEM;
    Soffa__Publish *v = e->items;
    for (size_t i = 0; i < f->n_items; i++) {
        soffa__publish__init(&v[i]);
        v[i].tag = f->items[i].tag;
        v[i].message = (ProtobufCBinaryData) {f->items[i].data_len, (uint8_t *) f->items[i].data};
        e->item_ptrs[i] = &v[i];
    }
    Soffa__PublishBatch *b = &e->b.publish_batch;
    soffa__publish_batch__init(b);
    b->items = (Soffa__Publish **) e->item_ptrs;
    b->n_items = f->n_items;
    e->fr.publish_batch = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_publish_batch(const Soffa__Frame *fr, soffa_frame_t *out)
{
    const Soffa__PublishBatch *b = fr->publish_batch;
    soffa_err_t rc = s_dec_items(out, b->n_items);
    for (size_t i = 0; rc == SOFFA_OK && i < b->n_items; i++) {
        out->items[i].tag = b->items[i]->tag;
        out->items[i].data = b->items[i]->message.data;
        out->items[i].data_len = b->items[i]->message.len;
    }
    return rc;
}

static soffa_err_t
s_enc_publish_acks(const soffa_frame_t *f, s_enc_t *e)
{
    if (f->n_items == 0 || f->n_items > SOFFA_BATCH_MAX)
        return SOFFA_ERR_INVALID_ARG;
    size_t n_ok = 0, n_bad = 0;
    for (size_t i = 0; i < f->n_items; i++)
        f->items[i].code ? n_bad++ : n_ok++;
    if (!s_enc_items(&e->items, &e->item_ptrs, n_ok, sizeof(Soffa__PublishAck))
        || !s_enc_items(&e->items2, &e->item_ptrs2, n_bad, sizeof(Soffa__Error)))
        return SOFFA_ERR_NOMEM;
    Soffa__PublishAck *acks = e->items;
    Soffa__Error *errs = e->items2;
    size_t a = 0, r = 0;
    for (size_t i = 0; i < f->n_items; i++) {
        const soffa_frame_item_t *it = &f->items[i];
        if (it->code) {
            soffa__error__init(&errs[r]);
            errs[r].tag = it->tag;
            errs[r].code = it->code;
            errs[r].text = (char *) (it->text ? it->text : "");
            e->item_ptrs2[r] = &errs[r];
            r++;
        } else {
            soffa__publish_ack__init(&acks[a]);
            acks[a].tag = it->tag;
            acks[a].seq = it->seq;
            acks[a].duplicate = it->duplicate;
            acks[a].mailbox = (char *) (it->mailbox ? it->mailbox : "");
            e->item_ptrs[a] = &acks[a];
            a++;
        }
    }
    Soffa__PublishAcks *b = &e->b.publish_acks;
    soffa__publish_acks__init(b);
    b->acks = (Soffa__PublishAck **) e->item_ptrs;
    b->n_acks = n_ok;
    b->refused = (Soffa__Error **) e->item_ptrs2;
    b->n_refused = n_bad;
    e->fr.publish_acks = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_publish_acks(const Soffa__Frame *fr, soffa_frame_t *out)
{
    const Soffa__PublishAcks *b = fr->publish_acks;
    if (b->n_acks > SOFFA_BATCH_MAX || b->n_refused > SOFFA_BATCH_MAX)
        return SOFFA_ERR_TOO_LARGE;
    soffa_err_t rc = s_dec_items(out, b->n_acks + b->n_refused);
    for (size_t i = 0; rc == SOFFA_OK && i < b->n_acks; i++) {
        soffa_frame_item_t *it = &out->items[i];
        it->tag = b->acks[i]->tag;
        it->seq = b->acks[i]->seq;
        it->duplicate = b->acks[i]->duplicate;
        rc = s_dec_str(b->acks[i]->mailbox, SOFFA_NAME_MAX, &it->mailbox);
    }
    for (size_t i = 0; rc == SOFFA_OK && i < b->n_refused; i++) {
        soffa_frame_item_t *it = &out->items[b->n_acks + i];
        it->tag = b->refused[i]->tag;
        it->code = b->refused[i]->code;
        if (it->code == 0)
            return SOFFA_ERR_MALFORMED;   /* a refusal names what was wrong */
        rc = s_dec_str(b->refused[i]->text, sizeof out->text, &it->text);
    }
    return rc;
}

static soffa_err_t
s_enc_deliver_batch(const soffa_frame_t *f, s_enc_t *e)
{
    if (f->n_items == 0 || f->n_items > SOFFA_BATCH_MAX)
        return SOFFA_ERR_INVALID_ARG;
    if (!s_enc_items(&e->items, &e->item_ptrs, f->n_items, sizeof(Soffa__Deliver)))
        return SOFFA_ERR_NOMEM;
    Soffa__Deliver *v = e->items;
    for (size_t i = 0; i < f->n_items; i++) {
        soffa__deliver__init(&v[i]);
        v[i].seq = f->items[i].seq;
        v[i].envelope = (ProtobufCBinaryData) {f->items[i].data_len, (uint8_t *) f->items[i].data};
        v[i].hash = (ProtobufCBinaryData) {SOFFA_HASH_LEN, (uint8_t *) f->items[i].hash};
        if (f->items[i].has_record_key)
            v[i].record_key = (ProtobufCBinaryData) {SOFFA_RECORD_KEY_LEN, (uint8_t *) f->items[i].record_key};
        e->item_ptrs[i] = &v[i];
    }
    Soffa__DeliverBatch *b = &e->b.deliver_batch;
    soffa__deliver_batch__init(b);
    b->items = (Soffa__Deliver **) e->item_ptrs;
    b->n_items = f->n_items;
    b->mailbox = (char *) f->mailbox;
    b->replay_tag = f->tag;
    e->fr.deliver_batch = b;
    return SOFFA_OK;
}

static soffa_err_t
s_dec_deliver_batch(const Soffa__Frame *fr, soffa_frame_t *out)
{
    const Soffa__DeliverBatch *b = fr->deliver_batch;
    out->tag = b->replay_tag;
    soffa_err_t rc = soffa_wire_copy(out->mailbox, sizeof out->mailbox, b->mailbox);
    if (rc == SOFFA_OK)
        rc = s_dec_items(out, b->n_items);
    for (size_t i = 0; rc == SOFFA_OK && i < b->n_items; i++) {
        const Soffa__Deliver *d = b->items[i];
        soffa_frame_item_t *it = &out->items[i];
        it->seq = d->seq;
        it->data = d->envelope.data;
        it->data_len = d->envelope.len;
        if (d->hash.len != SOFFA_HASH_LEN || (d->mailbox && d->mailbox[0]) || d->replay_tag)
            return SOFFA_ERR_MALFORMED;   /* every record carries its hash; the batch its mailbox and tag */
        memcpy(it->hash, d->hash.data, SOFFA_HASH_LEN);
        if (d->record_key.len != 0 && d->record_key.len != SOFFA_RECORD_KEY_LEN)
            return SOFFA_ERR_MALFORMED;
        if (d->record_key.len) {
            memcpy(it->record_key, d->record_key.data, SOFFA_RECORD_KEY_LEN);
            it->has_record_key = true;
        }
    }
    return rc;
}

/* ---- The table ------------------------------------------------------------ */

static const struct {
    soffa_frame_type_t type;
    const char *name;
    Soffa__Frame__BodyCase body;
    s_encode_fn encode;
    s_decode_fn decode;
} s_frames[] = {
    {SOFFA_FRAME_HELLO, "hello", SOFFA__FRAME__BODY_HELLO, s_enc_hello, s_dec_hello},
    {SOFFA_FRAME_WELCOME, "welcome", SOFFA__FRAME__BODY_WELCOME, s_enc_welcome, s_dec_welcome},
    {SOFFA_FRAME_PUBLISH, "publish", SOFFA__FRAME__BODY_PUBLISH, s_enc_publish, s_dec_publish},
    {SOFFA_FRAME_PUBLISH_ACK, "publish-ack", SOFFA__FRAME__BODY_PUBLISH_ACK, s_enc_publish_ack, s_dec_publish_ack},
    {SOFFA_FRAME_ERROR, "error", SOFFA__FRAME__BODY_ERROR, s_enc_error, s_dec_error},
    {SOFFA_FRAME_SUBSCRIBE, "subscribe", SOFFA__FRAME__BODY_SUBSCRIBE, s_enc_subscribe, s_dec_subscribe},
    {SOFFA_FRAME_DELIVER, "deliver", SOFFA__FRAME__BODY_DELIVER, s_enc_deliver, s_dec_deliver},
    {SOFFA_FRAME_ACK, "ack", SOFFA__FRAME__BODY_ACK, s_enc_ack, s_dec_ack},
    {SOFFA_FRAME_CREDIT, "credit", SOFFA__FRAME__BODY_CREDIT, s_enc_credit, s_dec_credit},
    {SOFFA_FRAME_REPLAY, "replay", SOFFA__FRAME__BODY_REPLAY, s_enc_replay, s_dec_replay},
    {SOFFA_FRAME_REPLAY_END, "replay-end", SOFFA__FRAME__BODY_REPLAY_END, s_enc_replay_end, s_dec_replay_end},
    {SOFFA_FRAME_PING, "ping", SOFFA__FRAME__BODY_PING, s_enc_ping, s_dec_ping},
    {SOFFA_FRAME_PONG, "pong", SOFFA__FRAME__BODY_PONG, s_enc_pong, s_dec_pong},
    {SOFFA_FRAME_STATUS_REQUEST, "status-request", SOFFA__FRAME__BODY_STATUS_REQUEST, s_enc_status_request,
     s_dec_status_request},
    {SOFFA_FRAME_STATUS_REPLY, "status-reply", SOFFA__FRAME__BODY_STATUS_REPLY, s_enc_status_reply,
     s_dec_status_reply},
    {SOFFA_FRAME_REPLAY_ACK, "replay-ack", SOFFA__FRAME__BODY_REPLAY_ACK, s_enc_replay_ack, s_dec_replay_ack},
    {SOFFA_FRAME_PUBLISH_BATCH, "publish-batch", SOFFA__FRAME__BODY_PUBLISH_BATCH, s_enc_publish_batch,
     s_dec_publish_batch},
    {SOFFA_FRAME_PUBLISH_ACKS, "publish-acks", SOFFA__FRAME__BODY_PUBLISH_ACKS, s_enc_publish_acks,
     s_dec_publish_acks},
    {SOFFA_FRAME_DELIVER_BATCH, "deliver-batch", SOFFA__FRAME__BODY_DELIVER_BATCH, s_enc_deliver_batch,
     s_dec_deliver_batch},
    {SOFFA_FRAME_ERASE, "erase", SOFFA__FRAME__BODY_ERASE, s_enc_erase, s_dec_erase},
    {SOFFA_FRAME_ERASED, "erased", SOFFA__FRAME__BODY_ERASED, s_enc_erased, s_dec_erased},
};

#define S_N_FRAMES (sizeof s_frames / sizeof *s_frames)

/* The row of a frame type, or -1. */
static int
s_row_of_type(soffa_frame_type_t type)
{
    for (size_t i = 0; i < S_N_FRAMES; i++)
        if (s_frames[i].type == type)
            return (int) i;
    return -1;
}

const char *
soffa_frame_type_name(soffa_frame_type_t type)
{
    if (type == SOFFA_FRAME_NONE)
        return "none";
    int i = s_row_of_type(type);
    return i < 0 ? "unknown" : s_frames[i].name;
}

soffa_err_t
soffa_frame_encode(const soffa_frame_t *f, uint8_t **buf, size_t *len)
{
    if (!f || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    int row = s_row_of_type(f->type);
    if (row < 0)
        return SOFFA_ERR_INVALID_ARG;
    s_enc_t e;
    memset(&e, 0, sizeof e);
    soffa__frame__init(&e.fr);
    e.fr.body_case = s_frames[row].body;
    soffa_err_t rc = s_frames[row].encode(f, &e);
    if (rc == SOFFA_OK) {
        size_t n = soffa__frame__get_packed_size(&e.fr);
        uint8_t *b = n > SOFFA_WIRE_MAX_FRAME ? NULL : malloc(n ? n : 1);
        if (n > SOFFA_WIRE_MAX_FRAME)
            rc = SOFFA_ERR_TOO_LARGE;
        else if (!b)
            rc = SOFFA_ERR_NOMEM;
        else {
            soffa__frame__pack(&e.fr, b);
            *buf = b;
            *len = n;
        }
    }
    free(e.ms);
    free(e.ms_ptrs);
    free(e.items);
    free(e.item_ptrs);
    free(e.items2);
    free(e.item_ptrs2);
    return rc;
}

soffa_err_t
soffa_frame_decode(const void *buf, size_t len, soffa_frame_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > SOFFA_WIRE_MAX_FRAME)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Frame *fr = soffa__frame__unpack(NULL, len, buf);
    if (!fr)
        return SOFFA_ERR_MALFORMED;
    out->pb_ = fr;
    for (size_t i = 0; i < S_N_FRAMES; i++)
        if (s_frames[i].body == fr->body_case) {
            out->type = s_frames[i].type;
            return s_frames[i].decode(fr, out);
        }
    return SOFFA_ERR_MALFORMED;
}

void
soffa_frame_fini(soffa_frame_t *f)
{
    if (!f)
        return;
    if (f->pb_) {
        Soffa__Frame *fr = f->pb_;
        if (fr->body_case == SOFFA__FRAME__BODY_DELIVER && fr->deliver && fr->deliver->record_key.data)
            sodium_memzero(fr->deliver->record_key.data, fr->deliver->record_key.len);
        if (fr->body_case == SOFFA__FRAME__BODY_DELIVER_BATCH && fr->deliver_batch)
            for (size_t i = 0; i < fr->deliver_batch->n_items; i++)
                if (fr->deliver_batch->items[i]->record_key.data)
                    sodium_memzero(fr->deliver_batch->items[i]->record_key.data,
                                   fr->deliver_batch->items[i]->record_key.len);
        soffa__frame__free_unpacked(f->pb_, NULL);
        free(f->statuses);   /* owned only when decoded */
        if (f->items)
            sodium_memzero(f->items, f->n_items * sizeof *f->items);
        free(f->items);
    }
    sodium_memzero(f, sizeof *f);
}
