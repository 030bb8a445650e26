/*  soffa_msg_int: what the message modules share behind the codec wall.
 *
 *  Private to lib/soffa_msg*.c: the owned protobuf-c message inside a
 *  soffa_msg_t. Only these files and the wire codecs include generated
 *  protobuf-c headers (STYLE.md §8).
 */
#ifndef SOFFA_MSG_INT_H
#define SOFFA_MSG_INT_H

#include "soffa_msg.h"
#include "soffa_msg.pb-c.h"

#include <stddef.h>

/* A decoded message lives in an arena of its own: protobuf-c allocates the
 * message, its parts and strings from it (a bump of a pointer, instead of a
 * malloc and a free for each), and it goes with the message. */
#define SOFFA_MSG_ARENA 2048

typedef struct soffa_msg_chunk {
    struct soffa_msg_chunk *next;
    max_align_t data[];
} soffa_msg_chunk_t;

struct soffa_msg {
    Soffa__Message *pb;   /* owned; from the arena when decoded, else freed with protobuf_c_message_free_unpacked */
    bool in_arena;        /* pb and its parts live in arena and chunks */
    size_t used;          /* bytes of arena given out */
    soffa_msg_chunk_t *chunks;   /* what did not fit, one allocation each */
    max_align_t arena[SOFFA_MSG_ARENA / sizeof(max_align_t)];
};

#endif
