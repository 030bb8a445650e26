/*  soffa_restore: the record that opens a store restored from a backup.
 *
 *  A restored broker numbers on from a point past every sequence the lost
 *  broker can have given out, so that no number an agent has seen (in its
 *  inbox, its acknowledged positions, a sender's receipt) is ever given to
 *  another record. The jump is recorded, as the first record after the
 *  backup's head (RK_RESTORE), so that verify and replay can tell it from
 *  records removed.
 */
#ifndef SOFFA_RESTORE_H
#define SOFFA_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

typedef struct {
    uint64_t from_seq;             /* the backup's head: the record before the restore record */
    int64_t backup_at_us;          /* when the backup was taken */
    int64_t restored_at_us;        /* when the restored store was first opened */
} soffa_restore_t;

/*  The sequence a restored broker numbers on from: past head, and past the
 *  wall clock in microseconds. A broker commits at most some 55,000 records
 *  a second, far below a million, so a broker that numbered from 1, or from
 *  an earlier jump made this way, cannot have reached the clock's value
 *  (with the clocks of both hosts right). */
uint64_t soffa_restore_next_seq(uint64_t head, int64_t now_us);

soffa_err_t soffa_restore_encode(const soffa_restore_t *r, uint8_t **buf, size_t *len);
soffa_err_t soffa_restore_decode(const void *buf, size_t len, soffa_restore_t *out);

#endif
