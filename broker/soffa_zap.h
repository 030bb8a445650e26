/*  soffa_zap: the ZAP handler: CURVE keys to identities.
 *
 *  Answers libzmq's authentication requests: a configured key is let in with
 *  its agent name as User-Id, anything else is refused.
 */
#ifndef SOFFA_ZAP_H
#define SOFFA_ZAP_H

#include "soffa_broker_int.h"

/* Answers the ZAP requests waiting on self->zap. */
void soffa_zap_handle(soffa_broker_t *self);

#endif
