/*  soffa_seal: encryption at rest (see soffa_seal.h). */
#include "soffa_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CTX "soffa-mk"          /* libsodium KDF context: 8 bytes */
#define S_SUB_WRAP 1              /* subkey ids derived from the master key */
#define S_SUB_ID 2
#define S_FILE_MAX 256            /* a key file is 64 hex digits and a newline; anything longer is refused */

soffa_err_t
soffa_seal_master_new(const char *path)
{
    uint8_t key[SOFFA_SEAL_KEY];
    char hex[2 * SOFFA_SEAL_KEY + 2];
    crypto_kdf_keygen(key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    sodium_memzero(key, sizeof key);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sodium_memzero(hex, sizeof hex);
        return errno == EEXIST ? SOFFA_ERR_EXISTS : soffa_err_from_errno(errno);
    }
    soffa_err_t rc = SOFFA_OK;
    if (fchmod(fd, 0600) != 0 || write(fd, hex, n) != (ssize_t) n || fsync(fd) != 0)
        rc = soffa_err_from_errno(errno ? errno : EIO);
    if (close(fd) != 0 && rc == SOFFA_OK)
        rc = soffa_err_from_errno(errno);
    sodium_memzero(hex, sizeof hex);
    if (rc != SOFFA_OK)
        unlink(path);
    return rc;
}

/* True if path (a file) lies in directory dir or below it, links resolved. */
static bool
s_inside(const char *path, const char *dir)
{
    char d[PATH_MAX], f[PATH_MAX];
    if (!realpath(dir, d) || !realpath(path, f))
        return false;
    size_t n = strlen(d);
    return strncmp(f, d, n) == 0 && (f[n] == '\0' || f[n] == '/');
}

soffa_err_t
soffa_seal_master_load(const char *spec, const char *base_dir, const char *data_dir, soffa_seal_master_t *out,
                       char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    bool credential = strncmp(spec, "credential:", 11) == 0;
    if (credential) {
        const char *name = spec + 11, *dir = getenv("CREDENTIALS_DIRECTORY");
        if (!name[0] || strchr(name, '/')) {
            snprintf(why, whylen, "master_key = %s: a credential is named credential:NAME (no slash)", spec);
            return SOFFA_ERR_CONFIG;
        }
        if (!dir || !dir[0]) {
            snprintf(why, whylen, "master_key = %s, but no systemd credentials were passed ($CREDENTIALS_DIRECTORY is "
                                  "not set): give the unit LoadCredentialEncrypted=%s:FILE, or name a file", spec, name);
            return SOFFA_ERR_NOT_FOUND;
        }
        snprintf(path, sizeof path, "%s/%s", dir, name);
    } else if (!spec[0]) {
        snprintf(why, whylen, "no master key is configured: make one with 'soffa masterkey new FILE' (outside the "
                              "data directory) and name it in master_key");
        return SOFFA_ERR_CONFIG;
    } else if (spec[0] == '/' || !base_dir) {
        snprintf(path, sizeof path, "%s", spec);
    } else {
        snprintf(path, sizeof path, "%s/%s", base_dir, spec);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(why, whylen, "the master key %s does not exist; make it with 'soffa masterkey new %s' (and keep a "
                                  "copy apart from the backups), or point master_key at the key this store was "
                                  "made with", path, path);
        else
            snprintf(why, whylen, "cannot read the master key %s: %s", path, strerror(e));
        return e == ENOENT ? SOFFA_ERR_NOT_FOUND : soffa_err_from_errno(e);
    }
    struct stat st;
    char buf[S_FILE_MAX + 1];
    ssize_t n = -1;
    soffa_err_t rc = SOFFA_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "the master key %s is not a regular file", path);
        rc = SOFFA_ERR_CONFIG;
    } else if (!credential && (st.st_mode & 077)) {
        snprintf(why, whylen, "the master key %s can be read by others; run chmod 600 on it", path);
        rc = SOFFA_ERR_PERMISSION;
    } else if (data_dir && s_inside(path, data_dir)) {
        snprintf(why, whylen, "the master key %s lies inside the data directory %s, where every copy and backup "
                              "would carry it: move it out (beside the configuration) and point master_key there",
                 path, data_dir);
        rc = SOFFA_ERR_CONFIG;
    } else {
        n = read(fd, buf, S_FILE_MAX);
    }
    close(fd);
    if (rc != SOFFA_OK)
        return rc;
    uint8_t key[SOFFA_SEAL_KEY];
    size_t bin = 0;
    const char *end = NULL;
    if (n > 0)
        buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n != 2 * SOFFA_SEAL_KEY
        || sodium_hex2bin(key, sizeof key, buf, (size_t) n, NULL, &bin, &end) != 0 || bin != SOFFA_SEAL_KEY) {
        sodium_memzero(buf, sizeof buf);
        sodium_memzero(key, sizeof key);
        snprintf(why, whylen, "the master key %s is damaged: it must hold 64 hex digits ('soffa masterkey new' makes "
                              "one)", path);
        return SOFFA_ERR_MASTER_KEY;
    }
    sodium_memzero(buf, sizeof buf);
    crypto_kdf_derive_from_key(out->wrap, sizeof out->wrap, S_SUB_WRAP, S_CTX, key);
    uint8_t idk[crypto_kdf_BYTES_MIN];
    crypto_kdf_derive_from_key(idk, sizeof idk, S_SUB_ID, S_CTX, key);
    memcpy(out->id, idk, SOFFA_SEAL_ID);
    sodium_memzero(idk, sizeof idk);
    sodium_memzero(key, sizeof key);
    out->loaded = true;
    return SOFFA_OK;
}

void
soffa_seal_master_id_hex(const soffa_seal_master_t *m, char out[2 * SOFFA_SEAL_ID + 1])
{
    sodium_bin2hex(out, 2 * SOFFA_SEAL_ID + 1, m->id, SOFFA_SEAL_ID);
}

void
soffa_seal_master_wipe(soffa_seal_master_t *m)
{
    if (m)
        sodium_memzero(m, sizeof *m);
}

void
soffa_seal_key_new(uint8_t key[SOFFA_SEAL_KEY])
{
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
}

bool
soffa_seal_plaintext(void)
{
#ifdef SOFFA_BENCH_PLAINTEXT
    return true;
#else
    return false;
#endif
}

#ifdef SOFFA_BENCH_PLAINTEXT
/* The build without encryption (benchmarks only): the same layout (a zero
 * nonce, the bytes as they are, a zero tag), nothing sealed. */
static void
s_copy_in(const void *plain, size_t len, uint8_t *out)
{
    memset(out, 0, SOFFA_SEAL_NONCE);
    memcpy(out + SOFFA_SEAL_NONCE, plain, len);
    memset(out + SOFFA_SEAL_NONCE + len, 0, SOFFA_SEAL_TAG);
}
#endif

void
soffa_seal_wrap(const uint8_t kek[SOFFA_SEAL_KEY], const uint8_t key[SOFFA_SEAL_KEY], const void *ad, size_t adlen,
                uint8_t out[SOFFA_SEAL_WRAPPED])
{
    soffa_seal_body(kek, key, SOFFA_SEAL_KEY, ad, adlen, out);
}

soffa_err_t
soffa_seal_unwrap(const uint8_t kek[SOFFA_SEAL_KEY], const uint8_t in[SOFFA_SEAL_WRAPPED], const void *ad, size_t adlen,
                  uint8_t key[SOFFA_SEAL_KEY])
{
#ifdef SOFFA_BENCH_PLAINTEXT
    (void) kek;
    (void) ad;
    (void) adlen;
    memcpy(key, in + SOFFA_SEAL_NONCE, SOFFA_SEAL_KEY);
    return SOFFA_OK;
#endif
    unsigned long long n = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &n, NULL, in + SOFFA_SEAL_NONCE,
                                                   SOFFA_SEAL_WRAPPED - SOFFA_SEAL_NONCE, ad, adlen, in, kek) != 0
        || n != SOFFA_SEAL_KEY) {
        sodium_memzero(key, SOFFA_SEAL_KEY);
        return SOFFA_ERR_MASTER_KEY;
    }
    return SOFFA_OK;
}

void
soffa_seal_body(const uint8_t key[SOFFA_SEAL_KEY], const void *plain, size_t len, const void *ad, size_t adlen,
                uint8_t *out)
{
#ifdef SOFFA_BENCH_PLAINTEXT
    (void) key;
    (void) ad;
    (void) adlen;
    s_copy_in(plain, len, out);
    return;
#endif
    randombytes_buf(out, SOFFA_SEAL_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + SOFFA_SEAL_NONCE, NULL, plain, len, ad, adlen, NULL, out, key);
}

soffa_err_t
soffa_seal_open(const uint8_t key[SOFFA_SEAL_KEY], const void *sealed, size_t len, const void *ad, size_t adlen,
                uint8_t **plain, size_t *plen)
{
    *plain = NULL;
    *plen = 0;
    if (len < SOFFA_SEAL_OVERHEAD)
        return SOFFA_ERR_MALFORMED;
    size_t n = len - SOFFA_SEAL_OVERHEAD;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return SOFFA_ERR_NOMEM;
    const uint8_t *s = sealed;
#ifdef SOFFA_BENCH_PLAINTEXT
    (void) key;
    (void) ad;
    (void) adlen;
    memcpy(p, s + SOFFA_SEAL_NONCE, n);
    *plain = p;
    *plen = n;
    return SOFFA_OK;
#endif
    unsigned long long got = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(p, &got, NULL, s + SOFFA_SEAL_NONCE, len - SOFFA_SEAL_NONCE, ad,
                                                   adlen, s, key) != 0) {
        free(p);
        return SOFFA_ERR_MASTER_KEY;
    }
    *plain = p;
    *plen = (size_t) got;
    return SOFFA_OK;
}

/* ---- The epoch key file ------------------------------------------------------ */

#define S_KEYS_FILE "keys"

static void
s_keys_ad(uint64_t epoch, uint8_t ad[16])
{
    memcpy(ad, "soffa-ep", 8);
    for (int i = 0; i < 8; i++)
        ad[8 + i] = (uint8_t) (epoch >> (56 - 8 * i));
}

soffa_err_t
soffa_seal_keys_read(const char *dir, soffa_seal_keys_t *out)
{
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, S_KEYS_FILE) >= (int) sizeof path)
        return SOFFA_ERR_INVALID_ARG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? SOFFA_ERR_NOT_FOUND : soffa_err_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        return SOFFA_ERR_PERMISSION;   /* owner-only, like every key file */
    }
    uint8_t buf[2 * SOFFA_SEAL_SLOT + 1];
    ssize_t n = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    if (n < 0)
        return soffa_err_from_errno(e);
    if (n != 2 * SOFFA_SEAL_SLOT)
        return SOFFA_ERR_STORE_CORRUPT;
    for (int s = 0; s < 2; s++) {
        const uint8_t *p = buf + s * SOFFA_SEAL_SLOT;
        uint64_t ep = 0;
        for (int i = 0; i < 8; i++)
            ep = (ep << 8) | p[i];
        out->epoch[s] = ep;
        memcpy(out->id[s], p + 8, SOFFA_SEAL_ID);
        memcpy(out->wrapped[s], p + 8 + SOFFA_SEAL_ID, SOFFA_SEAL_WRAPPED);
    }
    sodium_memzero(buf, sizeof buf);
    return SOFFA_OK;
}

soffa_err_t
soffa_seal_keys_get(const soffa_seal_keys_t *k, uint64_t epoch, const soffa_seal_master_t *m,
                    uint8_t key[SOFFA_SEAL_KEY], char *why, size_t whylen)
{
    bool other = false;
    char mine[2 * SOFFA_SEAL_ID + 1], theirs[2 * SOFFA_SEAL_ID + 1] = "";
    soffa_seal_master_id_hex(m, mine);
    for (int s = 0; epoch && s < 2; s++) {
        if (k->epoch[s] != epoch)
            continue;
        if (sodium_memcmp(k->id[s], m->id, SOFFA_SEAL_ID) != 0) {
            other = true;
            sodium_bin2hex(theirs, sizeof theirs, k->id[s], SOFFA_SEAL_ID);
            continue;
        }
        uint8_t ad[16];
        s_keys_ad(epoch, ad);
        if (soffa_seal_unwrap(m->wrap, k->wrapped[s], ad, sizeof ad, key) == SOFFA_OK)
            return SOFFA_OK;
        snprintf(why, whylen, "the epoch key in the data directory does not open with master key %s (the keys file "
                              "is damaged): restore the data directory from a backup", mine);
        return SOFFA_ERR_MASTER_KEY;
    }
    if (other) {
        snprintf(why, whylen, "this store was made with master key %s, and the master key given is %s: point "
                              "master_key at the right key (a backup needs the key in force when it was made)",
                 theirs, mine);
        return SOFFA_ERR_MASTER_KEY;
    }
    snprintf(why, whylen, "the keys file of the data directory holds no key for epoch %llu (it is missing or "
                          "damaged): restore the data directory from a backup", (unsigned long long) epoch);
    return SOFFA_ERR_NOT_FOUND;
}

soffa_err_t
soffa_seal_keys_put(const char *dir, int slot, uint64_t epoch, const uint8_t *key, const soffa_seal_master_t *m)
{
    if (slot < 0 || slot > 1 || (key && !m))
        return SOFFA_ERR_INVALID_ARG;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, S_KEYS_FILE) >= (int) sizeof path)
        return SOFFA_ERR_INVALID_ARG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return soffa_err_from_errno(errno);
    soffa_err_t rc = SOFFA_OK;
    struct stat st;
    uint8_t buf[SOFFA_SEAL_SLOT];
    memset(buf, 0, sizeof buf);
    if (key) {
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t) (epoch >> (56 - 8 * i));
        memcpy(buf + 8, m->id, SOFFA_SEAL_ID);
        uint8_t ad[16];
        s_keys_ad(epoch, ad);
        soffa_seal_wrap(m->wrap, key, ad, sizeof ad, buf + 8 + SOFFA_SEAL_ID);
    }
    if (fstat(fd, &st) != 0 || fchmod(fd, 0600) != 0)
        rc = soffa_err_from_errno(errno);
    /* A new file gets both slots (the other one empty) before either is used. */
    else if (st.st_size != 2 * SOFFA_SEAL_SLOT && ftruncate(fd, 2 * SOFFA_SEAL_SLOT) != 0)
        rc = soffa_err_from_errno(errno);
    else if (pwrite(fd, buf, sizeof buf, (off_t) slot * SOFFA_SEAL_SLOT) != (ssize_t) sizeof buf || fdatasync(fd) != 0)
        rc = soffa_err_from_errno(errno ? errno : EIO);
    if (close(fd) != 0 && rc == SOFFA_OK)
        rc = soffa_err_from_errno(errno);
    sodium_memzero(buf, sizeof buf);
    if (rc == SOFFA_OK && st.st_size != 2 * SOFFA_SEAL_SLOT) {
        /* The file is new: its directory entry must be durable too. */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0)
            rc = soffa_err_from_errno(errno);
        if (dfd >= 0)
            close(dfd);
    }
    return rc;
}

soffa_err_t
soffa_seal_keys_write(const char *dir, const soffa_seal_keys_t *k)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, S_KEYS_FILE) >= (int) sizeof path)
        return SOFFA_ERR_INVALID_ARG;
    uint8_t buf[2 * SOFFA_SEAL_SLOT];
    for (int sl = 0; sl < 2; sl++) {
        uint8_t *p = buf + sl * SOFFA_SEAL_SLOT;
        for (int i = 0; i < 8; i++)
            p[i] = (uint8_t) (k->epoch[sl] >> (56 - 8 * i));
        memcpy(p + 8, k->id[sl], SOFFA_SEAL_ID);
        memcpy(p + 8 + SOFFA_SEAL_ID, k->wrapped[sl], SOFFA_SEAL_WRAPPED);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? SOFFA_ERR_EXISTS : soffa_err_from_errno(errno);
    soffa_err_t rc = SOFFA_OK;
    if (fchmod(fd, 0600) != 0 || write(fd, buf, sizeof buf) != (ssize_t) sizeof buf || fsync(fd) != 0)
        rc = soffa_err_from_errno(errno ? errno : EIO);
    if (close(fd) != 0 && rc == SOFFA_OK)
        rc = soffa_err_from_errno(errno);
    sodium_memzero(buf, sizeof buf);
    return rc;
}
