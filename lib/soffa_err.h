/*  soffa_err: the one error vocabulary of soffa.
 *
 *  Every fallible function returns a soffa_err_t. Codes from LMDB, errno and
 *  ZeroMQ are translated where they enter soffa (the original code goes in
 *  the log line); nothing else leaks. The text of each code tells a person
 *  what was wrong and, where there is one, what to do next.
 *  The numeric values are part of the wire protocol (Error.code): append new
 *  codes at the end of the list, never reorder.
 */
#ifndef SOFFA_ERR_H
#define SOFFA_ERR_H

#define SOFFA_ERRORS(X)                                                             \
    X(OK, "success")                                                                \
    X(NOMEM, "out of memory")                                                       \
    X(INVALID_ARG, "invalid argument (a programming error in the caller)")         \
    X(MALFORMED, "message could not be decoded")                                    \
    X(TOO_LARGE, "frame or field is larger than the limit")                         \
    X(VERSION, "unsupported protocol or record version")                            \
    X(ID_FORMAT, "identity number has the wrong format (expected YYMMDD-NNNC or YYYYMMDDNNNC)") \
    X(ID_CHECKSUM, "identity number has a bad check digit")                         \
    X(ID_DATE, "identity number holds an impossible date")                          \
    X(KOMMUN, "unknown municipality code (see config/kommuner.csv)")                \
    X(SKOLENHET, "school unit code must be 8 digits")                               \
    X(ORGNR, "organisation number must be 10 digits with a valid check digit")      \
    X(MISSING_FIELD, "a required field is missing")                                 \
    X(BAD_FIELD, "a field has a value outside its allowed range")                   \
    X(STORE_FULL, "store is full; raise [store] map_size and restart")              \
    X(STORE_IO, "store could not be read or written; check the disk and the data directory") \
    X(STORE_CORRUPT, "store is damaged; restore the data directory from a backup")  \
    X(NOT_FOUND, "not found")                                                       \
    X(CHAIN_BROKEN, "hash chain is broken: the history was altered")               \
    X(PERMISSION, "permission denied; check file ownership and modes")              \
    X(EXISTS, "already exists")                                                     \
    X(TRANSPORT, "network transport failed")                                        \
    X(PROTOCOL_STATE, "frame is not allowed in the current session state")          \
    X(POLICY, "refused by policy: this role may not send this message")             \
    X(CONSENT, "refused: no active consent covers this disclosure")                 \
    X(NOT_AUTHORISED, "not authorised for this mailbox or scope")                   \
    X(TIMEOUT, "timed out")                                                         \
    X(CONFIG, "configuration is invalid")                                           \
    X(IO, "input/output error")                                                     \
    X(AGE, "subject's age is outside what the legal basis allows")                  \
    X(PROTECTED, "refused: contact details are not allowed for a protected identity") \
    X(LEGAL_BASIS, "legal basis does not match the message type")                   \
    X(UNAVAILABLE, "service unavailable; try again later")                          \
    X(INTERNAL, "internal error; please report it with the log")                    \
    X(DISK_FULL, "the disk holding the store is full; free space on it and publishing resumes") \
    X(SESSION_CLOSED, "the broker closed this session (another connection with the same key took over, or the key has too many sessions); reconnect, and if it happens again check that no second agent uses this key") \
    X(SENSITIVE_TEXT, "refused: the free text names sensitive personal data (health, substance use, social services, crime, religion, sexuality, ethnic origin or opinions) that may not go to this recipient; rewrite it without them and send again") \
    X(SOCIAL_SECRECY, "refused: this would carry what social services knows (even that a young person is in contact with them, OSL 26:1) to Arbetsförmedlingen, where it may never go; refer on your own account, not as a follow-up of social services' answers") \
    X(NOT_OPEN, "refused: the case or referral it names is not open for this (closed, expired, or another young person's); check the id, or reopen the case with a new signal") \
    X(MASTER_KEY, "the master key is missing, damaged or not the one this store was made with; see [keys] master_key (soffa masterkey new makes one)") \
    X(DISPOSED, "the record was disposed of (its retention period ran out, or it was erased on request): its content no longer exists")

typedef enum {
#define SOFFA_ERR_ENUM_(name, text) SOFFA_ERR_##name,
    SOFFA_ERRORS(SOFFA_ERR_ENUM_)
#undef SOFFA_ERR_ENUM_
    SOFFA_ERR__COUNT
} soffa_err_t;

/* SOFFA_OK is SOFFA_ERR_OK: success is zero. */
#define SOFFA_OK SOFFA_ERR_OK

/*  Returns a static sentence describing rc; never NULL. */
const char *soffa_strerror(soffa_err_t rc);

/*  Returns the symbolic name of rc ("STORE_FULL"); never NULL. */
const char *soffa_errname(soffa_err_t rc);

/*  Translates an errno value into a soffa code. */
soffa_err_t soffa_err_from_errno(int err);

#endif
