/*  soffa_wire: the stored envelope, the broker protocol frames and the hash
 *  of the history chain.
 *
 *  Frames are one ZeroMQ message each, at most SOFFA_WIRE_MAX_FRAME bytes.
 *  Decoding checks the size first, then unpacks, then copies every field into
 *  plain C structs with length checks; anything that does not fit is an
 *  error, never a truncation. Decoded byte fields (Publish.message,
 *  Deliver.envelope, Envelope.body) are borrowed from the decoded object and
 *  live until the matching _fini.
 */
#ifndef SOFFA_WIRE_H
#define SOFFA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_msg.h"

#define SOFFA_WIRE_MAX_FRAME (256 * 1024)
#define SOFFA_PROTOCOL_VERSION 1
#define SOFFA_ENVELOPE_VERSION 1
#define SOFFA_HASH_LEN 32
#define SOFFA_SUBJECT_KEY_LEN 16
#define SOFFA_NAME_MAX 64        /* agent names and mailboxes, with NUL */
#define SOFFA_WELCOME_MAX 16     /* mailboxes / municipalities in a welcome */

typedef enum {
    SOFFA_RK_NONE = 0,
    SOFFA_RK_MESSAGE = 1,   /* body is an encoded domain message */
    SOFFA_RK_ACCESS = 2,    /* body is an encoded access record */
    SOFFA_RK_CHECKPOINT = 3, /* body is an encoded, signed checkpoint */
} soffa_record_kind_t;

#define SOFFA_SIGN_PUBLIC 32
#define SOFFA_SIGN_SECRET 64
#define SOFFA_SIGNATURE 64

/*  A signed checkpoint of the chain head. */
typedef struct {
    uint64_t covers_seq;                       /* last record it vouches for */
    uint8_t head_hash[SOFFA_HASH_LEN];         /* that record's hash */
    int64_t at_us;
    uint8_t public_key[SOFFA_SIGN_PUBLIC];     /* the signer */
    uint8_t signature[SOFFA_SIGNATURE];
} soffa_checkpoint_t;

/*  A stored envelope. */
typedef struct {
    uint32_t version;
    uint64_t seq;
    uint8_t message_id[16];
    char sender_agent[SOFFA_NAME_MAX];
    soffa_role_t sender_role;
    char sender_kommun[5];
    char sender_unit[33];
    int64_t received_at_us;
    char mailbox[SOFFA_NAME_MAX];
    uint8_t prev_hash[SOFFA_HASH_LEN];
    soffa_record_kind_t kind;
    const uint8_t *body;              /* borrowed: the caller's on encode, pb_'s after decode */
    size_t body_len;
    uint8_t subject_key[SOFFA_SUBJECT_KEY_LEN];
    bool has_subject_key;
    uint32_t msg_type;                /* soffa_msg_type_t of the body, 0 for other kinds */
    void *pb_;                        /* private: decoded object owning body */
} soffa_envelope_t;

typedef enum {
    SOFFA_FRAME_NONE = 0,
    SOFFA_FRAME_HELLO = 1,
    SOFFA_FRAME_WELCOME = 2,
    SOFFA_FRAME_PUBLISH = 3,
    SOFFA_FRAME_PUBLISH_ACK = 4,
    SOFFA_FRAME_ERROR = 5,
    SOFFA_FRAME_SUBSCRIBE = 6,
    SOFFA_FRAME_DELIVER = 7,
    SOFFA_FRAME_ACK = 8,
    SOFFA_FRAME_CREDIT = 9,
    SOFFA_FRAME_REPLAY = 10,
    SOFFA_FRAME_REPLAY_END = 11,
    SOFFA_FRAME_PING = 12,
    SOFFA_FRAME_PONG = 13,
    SOFFA_FRAME_STATUS_REQUEST = 14,
    SOFFA_FRAME_STATUS_REPLY = 15,
    SOFFA_FRAME_REPLAY_ACK = 16,
} soffa_frame_type_t;

typedef struct {
    uint64_t from_seq;
    uint64_t to_seq;                  /* 0 = no upper bound */
    int64_t from_us;
    int64_t to_us;                    /* 0 = no upper bound */
    char mailbox[SOFFA_NAME_MAX];     /* "" = all in scope */
    char subject_id[13];              /* "" = any subject */
    uint32_t message_type;            /* soffa_msg_type_t, 0 = all */
    uint64_t limit;                   /* 0 = no limit */
} soffa_replay_filter_t;

typedef struct {
    char mailbox[SOFFA_NAME_MAX];
    uint64_t depth;
    uint64_t last_seq;
    uint32_t consumers;
    uint64_t lag;
    int64_t oldest_undelivered_us;
    bool no_reader;
    uint64_t overdue;                 /* answers missing past their deadline */
} soffa_mailbox_status_t;

/*  One protocol frame. Which fields mean something depends on type; the
 *  rest are zero. */
typedef struct {
    soffa_frame_type_t type;
    uint64_t tag;                     /* publish, acks, error, replay, status; ping nonce */
    uint64_t seq;                     /* publish_ack, deliver, ack */
    uint64_t count;                   /* replay_end */
    uint64_t access_seq;              /* replay_end */
    bool duplicate;                   /* publish_ack */
    uint32_t code;                    /* error: a soffa_err_t */
    char text[256];                   /* error text; hello client; replay request */
    uint32_t version;                 /* hello */
    char agent[SOFFA_NAME_MAX];       /* welcome */
    soffa_role_t role;                /* welcome */
    char mailbox[SOFFA_NAME_MAX];     /* publish_ack, subscribe, deliver, ack, credit */
    char mailboxes[SOFFA_WELCOME_MAX][SOFFA_NAME_MAX]; /* welcome */
    size_t n_mailboxes;
    char kommuner[SOFFA_WELCOME_MAX][5];                /* welcome */
    size_t n_kommuner;
    uint32_t credit;                  /* subscribe, credit; replay: its window */
    uint32_t heartbeat_ms;            /* welcome */
    uint32_t max_frame;               /* welcome */
    const uint8_t *data;              /* publish: message; deliver: envelope (borrowed) */
    size_t data_len;
    uint8_t hash[SOFFA_HASH_LEN];     /* deliver; ack, replay_ack: the hash of seq as delivered */
    bool has_hash;
    soffa_replay_filter_t filter;     /* replay */
    uint64_t head_seq;                /* status_reply */
    uint32_t sessions;                /* status_reply */
    int64_t started_at_us;            /* status_reply */
    uint64_t receipt;                 /* status_reply; status_request: the last one read */
    soffa_mailbox_status_t *statuses; /* status_reply: borrowed on encode, owned after decode */
    size_t n_statuses;
    void *pb_;                        /* private */
} soffa_frame_t;

typedef enum {
    SOFFA_ACCESS_NONE = 0,
    SOFFA_ACCESS_OPENED = 1,     /* written before the first record is sent */
    SOFFA_ACCESS_COMPLETED = 2,  /* the read ended */
    SOFFA_ACCESS_CUT_OFF = 3,    /* the reader went away before the end */
} soffa_access_state_t;

/*  A read of the history, kept in the log as an RK_ACCESS record. */
typedef struct {
    char agent[SOFFA_NAME_MAX];        /* who read */
    soffa_role_t role;
    char request[32];                  /* replay, history, stats */
    char filter[256];                  /* the filter as text (no identity numbers) */
    uint8_t subject_key[SOFFA_SUBJECT_KEY_LEN];
    bool has_subject_key;
    uint64_t records;                  /* records returned */
    soffa_access_state_t state;
    uint64_t opened_seq;               /* COMPLETED, CUT_OFF: the OPENED record */
} soffa_access_t;

/*  Encodes an access record into a new buffer (free with free()). */
soffa_err_t soffa_access_encode(const soffa_access_t *a, uint8_t **buf, size_t *len);

/*  Decodes an access record. */
soffa_err_t soffa_access_decode(const void *buf, size_t len, soffa_access_t *out);

/*  Signs cp (covers_seq, head_hash, at_us) with an Ed25519 secret key;
 *  fills public_key and signature. */
void soffa_checkpoint_sign(soffa_checkpoint_t *cp, const uint8_t secret[SOFFA_SIGN_SECRET]);

/*  True if cp's signature is valid for `public_key` (NULL: the key in cp). */
bool soffa_checkpoint_valid(const soffa_checkpoint_t *cp, const uint8_t *public_key);

soffa_err_t soffa_checkpoint_encode(const soffa_checkpoint_t *cp, uint8_t **buf, size_t *len);
soffa_err_t soffa_checkpoint_decode(const void *buf, size_t len, soffa_checkpoint_t *out);

/* ---- Hash chain ---- */

/*  BLAKE2b-256 of buf: the hash every chain link refers to. */
void soffa_wire_hash(const void *buf, size_t len, uint8_t out[SOFFA_HASH_LEN]);

/* ---- Envelope ---- */

/*  Encodes env into a new buffer (free with free()).
 *  Returns SOFFA_OK, SOFFA_ERR_TOO_LARGE or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_envelope_encode(const soffa_envelope_t *env, uint8_t **buf, size_t *len);

/*  Decodes into *out (which must be released with soffa_envelope_fini).
 *  Returns SOFFA_OK, SOFFA_ERR_MALFORMED, SOFFA_ERR_TOO_LARGE, SOFFA_ERR_VERSION. */
soffa_err_t soffa_envelope_decode(const void *buf, size_t len, soffa_envelope_t *out);

/*  Releases what decode allocated; safe on a zeroed or encoded-only env. */
void soffa_envelope_fini(soffa_envelope_t *env);

/* ---- Frames ---- */

/*  Name of a frame type for logs ("publish"). */
const char *soffa_frame_type_name(soffa_frame_type_t type);

/*  Encodes f into a new buffer (free with free()). */
soffa_err_t soffa_frame_encode(const soffa_frame_t *f, uint8_t **buf, size_t *len);

/*  Decodes a frame; release with soffa_frame_fini even on error.
 *  Returns SOFFA_OK, SOFFA_ERR_TOO_LARGE, SOFFA_ERR_MALFORMED. */
soffa_err_t soffa_frame_decode(const void *buf, size_t len, soffa_frame_t *out);

/*  Releases what decode allocated and zeroes f. */
void soffa_frame_fini(soffa_frame_t *f);

#endif
