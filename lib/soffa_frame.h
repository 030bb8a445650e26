/*  soffa_frame: the broker protocol's frames.
 *
 *  One frame is one ZeroMQ message, at most SOFFA_WIRE_MAX_FRAME bytes. The
 *  codec is a table with one row per frame type (its name, its protobuf
 *  body, an encoder and a decoder), so a new frame is a row and two small
 *  functions. Decoding checks the size first, then unpacks, then copies
 *  every field into the plain C struct with length checks; anything that
 *  does not fit is an error, never a truncation. Byte fields
 *  (Publish.message, Deliver.envelope) are borrowed from the decoded object
 *  and live until soffa_frame_fini.
 *
 *  Batch frames (protocol 2) carry their messages or records as items: a
 *  PUBLISH-BATCH many publishes, a PUBLISH-ACKS their outcomes, a
 *  DELIVER-BATCH many records of one mailbox or replay; at most
 *  SOFFA_BATCH_MAX items, each with the limits of its single frame.
 */
#ifndef SOFFA_FRAME_H
#define SOFFA_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_wire.h"

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
    SOFFA_FRAME_PUBLISH_BATCH = 17,
    SOFFA_FRAME_PUBLISH_ACKS = 18,
    SOFFA_FRAME_DELIVER_BATCH = 19,
    SOFFA_FRAME_ERASE = 20,
    SOFFA_FRAME_ERASED = 21,
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

/*  One item of a batch frame. Strings and bytes are borrowed: from the
 *  caller when encoding, from the decoded frame (until soffa_frame_fini)
 *  when decoding. */
typedef struct {
    uint64_t tag;                     /* publish: the client's; its outcome: the same tag */
    uint64_t seq;                     /* outcome: where it was stored; deliver: the record */
    bool duplicate;                   /* outcome: a retry of a message stored before */
    uint32_t code;                    /* outcome: 0 stored, else the refusal (a soffa_err_t) */
    const char *text;                 /* outcome: the refusal's reason (< 256 bytes) */
    const char *mailbox;              /* outcome: where a stored message went (< SOFFA_NAME_MAX) */
    const uint8_t *data;              /* publish: message; deliver: envelope */
    size_t data_len;
    uint8_t hash[SOFFA_HASH_LEN];     /* deliver: the record's hash (always carried) */
    uint8_t record_key[SOFFA_RECORD_KEY_LEN]; /* deliver: the key of a sealed body */
    bool has_record_key;
} soffa_frame_item_t;

/*  One protocol frame. Which fields mean something depends on type; the
 *  rest are zero. */
typedef struct {
    soffa_frame_type_t type;
    uint64_t tag;                     /* publish, acks, error, replay, status; ping nonce; deliver(_batch): replay tag */
    uint64_t seq;                     /* publish_ack, deliver, ack */
    uint64_t count;                   /* replay_end; erased: records erased */
    uint64_t access_seq;              /* replay_end; erased: the last disposal record (seq: the first) */
    bool duplicate;                   /* publish_ack */
    uint32_t code;                    /* error: a soffa_err_t; erase: the reason code */
    char text[256];                   /* error text; hello client; replay request */
    uint32_t version;                 /* hello: newest spoken; welcome: the session's */
    char agent[SOFFA_NAME_MAX];       /* welcome */
    soffa_role_t role;                /* welcome */
    char mailbox[SOFFA_NAME_MAX];     /* publish_ack, subscribe, deliver(_batch), ack, credit */
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
    uint8_t record_key[SOFFA_RECORD_KEY_LEN]; /* deliver: the key of a sealed body */
    bool has_record_key;
    soffa_replay_filter_t filter;     /* replay; erase: subject_id */
    uint64_t head_seq;                /* status_reply */
    uint32_t sessions;                /* status_reply */
    int64_t started_at_us;            /* status_reply */
    uint64_t receipt;                 /* status_reply; status_request: the last one read */
    soffa_mailbox_status_t *statuses; /* status_reply: borrowed on encode, owned after decode */
    size_t n_statuses;
    uint32_t batch_max;               /* welcome: most items a batch frame may carry (0: none) */
    soffa_frame_item_t *items;        /* batch frames: borrowed on encode, owned after decode */
    size_t n_items;
    void *pb_;                        /* private */
} soffa_frame_t;


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
