/*  soffa_bytes: big-endian integers in byte keys, so that LMDB's byte order
 *  is numeric order. */
#ifndef SOFFA_BYTES_H
#define SOFFA_BYTES_H

#include <stdint.h>

/*  Writes v as 8 big-endian bytes at p. */
void soffa_bytes_put_u64(uint8_t *p, uint64_t v);

/*  Reads 8 big-endian bytes at p. */
uint64_t soffa_bytes_get_u64(const uint8_t *p);

/*  Writes v as 4 big-endian bytes at p. */
void soffa_bytes_put_u32(uint8_t *p, uint32_t v);

/*  Reads 4 big-endian bytes at p. */
uint32_t soffa_bytes_get_u32(const uint8_t *p);

#endif
