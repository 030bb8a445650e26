/*  soffa_send: frames to one peer of the router.
 *
 *  Every answer, delivery and error the broker sends goes through here: the
 *  peer's routing id, then the encoded frame, never blocking (a peer whose
 *  queue is full does not get the frame; windows and one-reply-at-a-time
 *  rules keep that rare, and the peer asks again).
 */
#ifndef SOFFA_SEND_H
#define SOFFA_SEND_H

#include "soffa_broker_int.h"

/* Encodes and sends f to rid; false when it could not be queued. */
bool soffa_send_frame(soffa_broker_t *self, const uint8_t *rid, const soffa_frame_t *f);

/* An ERROR with code and text (NULL or "": the code's own text); tag names
 * the request it answers. */
void soffa_send_error(soffa_broker_t *self, const uint8_t *rid, uint64_t tag, soffa_err_t code, const char *text);

#endif
