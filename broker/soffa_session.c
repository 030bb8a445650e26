/*  soffa_session: sessions: who is on which connection (see soffa_session.h). */
#include "soffa_session.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <zmq.h>

#include "soffa_log.h"

#include "soffa_ring.h"
#include "soffa_send.h"

static const char *const s_state_names[] = {"NEW", "READY", "REPLAY-OPENING", "REPLAYING", "REPLAY-CLOSING", "CLOSED"};

const char *
soffa_session_state_name(soffa_session_state_t st)
{
    return (unsigned)st < sizeof s_state_names / sizeof s_state_names[0] ? s_state_names[st] : "?";
}
/* ---- Sessions ------------------------------------------------------------------- */

/* A session belongs to one connection (the socket its first frame came in
 * on) and one key (the CURVE identity ZAP gave it). It is forgotten when
 * that connection closes (the router's monitor tells), when a frame under
 * its routing id arrives on another connection or with another key, and
 * when it has been silent for longer than expiry_ms. Every session is kept
 * in a list ordered by when it was last heard from, so expiry looks only at
 * the sessions that are actually silent. */

static void
s_lru_unlink(soffa_broker_t *self, soffa_session_t *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else if (self->lru_head == s)
        self->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else if (self->lru_tail == s)
        self->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

void
soffa_session_touch(soffa_broker_t *self, soffa_session_t *s)
{
    s->last_seen = soffa_mono_us();
    if (self->lru_tail == s)
        return;
    s_lru_unlink(self, s);
    s->lru_prev = self->lru_tail;
    if (self->lru_tail)
        self->lru_tail->lru_next = s;
    else
        self->lru_head = s;
    self->lru_tail = s;
}

void
soffa_session_replaying_remove(soffa_broker_t *self, soffa_session_t *s)
{
    for (soffa_session_t **pp = &self->replaying; *pp; pp = &(*pp)->rp_next)
        if (*pp == s) {
            *pp = s->rp_next;
            s->rp_next = NULL;
            return;
        }
}

/* Ends what a session holds: what the modules above hold for it (its
 * readers, a replay under way: the broker's `released` callback), its
 * place among the replays and in its key's count. */
void
soffa_session_release(soffa_broker_t *self, soffa_session_t *s)
{
    if (s->state == SOFFA_SESS_CLOSED)
        return;
    self->released(self, s);
    soffa_session_replaying_remove(self, s);
    s->n_consumers = 0;
    s->ident->live--;
}

/* Closes a session whose connection is alive: its agent hears why (an
 * ERROR with code), it is answered no more, and its connection is cut a
 * moment later (libzmq's ROUTER cannot close one peer, so the broker shuts
 * the socket down; libzmq then tears the connection down as if the peer had
 * gone, which frees what was queued for it). */
void
soffa_session_close(soffa_broker_t *self, soffa_session_t *s, soffa_err_t code, const char *why)
{
    if (s->state == SOFFA_SESS_CLOSED)
        return;
    soffa_warn("session of %s closed: %s", s->id->name, why);
    soffa_send_error(self, s->rid, 0, code, why);
    soffa_session_release(self, s);
    s->state = SOFFA_SESS_CLOSED;
    s->shutdown_at = soffa_mono_us() + SOFFA_CLOSE_GRACE_US;
    self->n_closing++;
}

/* Cuts the connection of a closed session. Only the socket the session
 * was made on: the fd must still be a socket with the same inode (fd
 * numbers are reused). */
static void
s_cut(soffa_broker_t *self, soffa_session_t *s)
{
    struct stat st;
    if (fstat(s->fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == s->ino) {
        if (shutdown(s->fd, SHUT_RDWR) != 0)
            soffa_debug("cutting the connection of a closed session of %s: %s", s->id->name, strerror(errno));
    }
    s->shutdown_at = 0;
    self->n_closing--;
}

/* Forgets a session entirely (a closed one has its connection cut first). */
void
soffa_session_forget(soffa_broker_t *self, soffa_session_t *s, const char *why)
{
    if (s->state != SOFFA_SESS_CLOSED)
        soffa_info("session of %s closed: %s", s->id->name, why);
    else if (s->shutdown_at)
        s_cut(self, s);
    soffa_session_release(self, s);
    s_lru_unlink(self, s);
    if (soffa_map_get(self->by_fd, &s->fd, sizeof s->fd) == s)
        soffa_map_remove(self->by_fd, &s->fd, sizeof s->fd);
    soffa_map_remove(self->sessions, s->rid, SOFFA_RID_LEN);
    soffa_ident_unref(&s->ident);
    free(s);
}

typedef struct {
    int64_t now;
    size_t left;
    soffa_broker_t *self;
} s_cut_t;

static int
s_cut_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_cut_t *c = ctx;
    soffa_session_t *s = v;
    if (s->state != SOFFA_SESS_CLOSED || !s->shutdown_at || s->shutdown_at > c->now)
        return 0;
    s_cut(c->self, s);
    return --c->left == 0;
}

void
soffa_session_cut_due(soffa_broker_t *self)
{
    if (self->n_closing == 0)
        return;
    s_cut_t c = {soffa_mono_us(), self->n_closing, self};
    soffa_map_each(self->sessions, s_cut_one, &c);
}

/* Sessions silent for longer than expiry_ms at the last moment the broker
 * had read everything queued (last_drain), not at wall-clock now: a broker
 * that stalls (a slow disk) must not take the pings waiting in its own queue
 * for silence. Oldest first, so this stops at the first one heard recently. */
void
soffa_session_expire(soffa_broker_t *self)
{
    while (self->lru_head && self->last_drain - self->lru_head->last_seen > self->cfg.expiry_ms * 1000)
        soffa_session_forget(self, self->lru_head, "silent for longer than expiry_ms");
}

/* The router's monitor: a connection closed, or a socket was accepted on an
 * fd that an old session still names. Either way that session is gone. */
void
soffa_session_monitor(soffa_broker_t *self, void *monitor)
{
    for (int i = 0; i < 1024; i++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, monitor, 0);
        if (zmq_msg_size(&ev) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *) zmq_msg_data(&ev) + 2, 4);
            int fd = (int) value;
            soffa_session_t *s = soffa_map_get(self->by_fd, &fd, sizeof fd);
            if (s && (event == ZMQ_EVENT_DISCONNECTED || event == ZMQ_EVENT_ACCEPTED))
                soffa_session_forget(self, s, "its connection closed");
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

/* A new session for a frame under routing id rid, from agent ident
 * authenticated with key on socket fd. Over the agent's limit, its oldest
 * session is closed. */
soffa_session_t *
soffa_session_new(soffa_broker_t *self, const uint8_t *rid, soffa_ident_t *ident, const uint8_t key[32], int fd)
{
    soffa_session_t *old = soffa_map_get(self->by_fd, &fd, sizeof fd);
    if (old)
        soffa_session_forget(self, old, "its socket now carries another connection");
    soffa_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    memcpy(s->rid, rid, SOFFA_RID_LEN);
    s->ident = ident;
    s->id = &ident->id;
    memcpy(s->key, key, 32);
    s->state = SOFFA_SESS_NEW;
    s->fd = fd;
    struct stat st;
    if (fstat(fd, &st) == 0)
        s->ino = st.st_ino;
    if (soffa_map_put(self->sessions, rid, SOFFA_RID_LEN, s) != SOFFA_OK
        || soffa_map_put(self->by_fd, &s->fd, sizeof s->fd, s) != SOFFA_OK) {
        soffa_map_remove(self->sessions, rid, SOFFA_RID_LEN);
        free(s);
        return NULL;
    }
    soffa_ident_ref(ident);
    soffa_session_touch(self, s);
    const soffa_identity_t *id = s->id;
    if (++ident->live > (uint32_t) self->cfg.sessions_per_agent) {
        for (soffa_session_t *o = self->lru_head; o; o = o->lru_next)
            if (o != s && o->ident == ident && o->state != SOFFA_SESS_CLOSED) {
                char why[200];
                snprintf(why, sizeof why, "%s has more than %lld sessions; the one heard from least recently is closed",
                         id->name, (long long) self->cfg.sessions_per_agent);
                soffa_session_close(self, o, SOFFA_ERR_SESSION_CLOSED, why);
                break;
            }
    }
    return s;
}

void
soffa_session_set_state(soffa_session_t *s, soffa_session_state_t to)
{
    if (s->state != to)
        soffa_debug("session of %s: %s -> %s", s->id->name, soffa_session_state_name(s->state), soffa_session_state_name(to));
    s->state = to;
}

soffa_session_t *
soffa_session_of(soffa_broker_t *self, const uint8_t *rid)
{
    return soffa_map_get(self->sessions, rid, SOFFA_RID_LEN);
}
