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

struct soffa_msg {
    Soffa__Message *pb;   /* owned; freed with protobuf_c_message_free_unpacked */
};

#endif
