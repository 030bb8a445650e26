/*  soffa_notice: the messages the broker writes itself from stored ones.
 *
 *  Built through the message's JSON form (soffa_msg_to_json and back), so
 *  that the generated codec stays behind soffa_msg: a referral's EXPIRED
 *  status, and copies of a message routed on (a signal rerouted to the right
 *  home municipality, a case handed on to the new one's KAA). Every result
 *  is encoded into *buf (free with free()) and valid by soffa_msg_validate.
 */
#ifndef SOFFA_NOTICE_H
#define SOFFA_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "soffa_msg.h"

/*  The status EXPIRED of `referral` (a decoded referral_sent nobody
 *  answered in time): same subject, consent and thread, caused by the
 *  referral, with message id message_id, at now_us. Returns SOFFA_OK,
 *  SOFFA_ERR_INVALID_ARG (not a referral) or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_notice_expired(const soffa_msg_t *referral, const uint8_t message_id[16], int64_t now_us,
                                 uint8_t **buf, size_t *len);

/*  How a copy differs from the message it copies. */
typedef struct {
    const char *hemkommun;         /* the subject's home municipality, NULL: as it was */
    const uint8_t *consent_id;     /* the consent it now rests on, NULL: as it was */
    bool drop_consent;             /* no consent id (a notice that rests on none) */
    const uint8_t *causation_id;   /* what caused the copy, NULL: as it was */
} soffa_notice_edit_t;

/*  A copy of msg with the changes in edit (the message id stays: answers
 *  to a rerouted signal name it). Returns SOFFA_OK, SOFFA_ERR_NOMEM or the
 *  code of what the changes made invalid. */
soffa_err_t soffa_notice_copy(const soffa_msg_t *msg, const soffa_notice_edit_t *edit, uint8_t **buf, size_t *len);

#endif
