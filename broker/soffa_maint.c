/*  soffa_maint: offline maintenance of the broker's store (see soffa_maint.h). */
#include "soffa_maint.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_cfg.h"
#include "soffa_log.h"

#include "soffa_commit.h"
#include "soffa_retain.h"

/* The pid of another process that has the LMDB environment in dir open
 * (LMDB holds a shared lock on the first byte of lock.mdb while it does), or
 * 0 when none does. */
static pid_t
s_other_user(const char *dir)
{
    char lock[1100];
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    pid_t pid = 0;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
        pid = fl.l_pid ? fl.l_pid : -1;
    close(fd);
    return pid;
}

/* The format version of the store in dir ("" when it has none). */
static soffa_err_t
s_version_of(const char *dir, size_t map_size, char out[16])
{
    out[0] = '\0';
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    int mrc;
    if ((mrc = mdb_env_create(&env)) == 0) {
        mdb_env_set_maxdbs(env, 16);
        mdb_env_set_mapsize(env, map_size ? map_size : (size_t) 1 << 30);
        if ((mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) == 0
            && (mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0
            && (mrc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0) {
            MDB_val k = {7, "version"}, v;
            if ((mrc = mdb_get(txn, meta, &k, &v)) == 0)
                snprintf(out, 16, "%.*s", (int) (v.mv_size < 15 ? v.mv_size : 15), (const char *) v.mv_data);
        }
    }
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return mrc == 0 || mrc == MDB_NOTFOUND ? SOFFA_OK : soffa_store_err(mrc);
}

/* Copies a file, owner-only, flushed. */
static soffa_err_t
s_copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return soffa_err_from_errno(errno);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    soffa_err_t rc = out < 0 ? soffa_err_from_errno(errno) : SOFFA_OK;
    char buf[4096];
    ssize_t n;
    while (rc == SOFFA_OK && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t) n) != n)
            rc = soffa_err_from_errno(errno ? errno : EIO);
    if (rc == SOFFA_OK && (fchmod(out, 0600) != 0 || fsync(out) != 0))
        rc = soffa_err_from_errno(errno);
    if (out >= 0)
        close(out);
    close(in);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

/* A compacted copy of the store in dir (any format) into the new directory
 * dest, with the subject-index secret of formats 2 and 3 beside it. */
static soffa_err_t
s_backup_old(const char *dir, size_t map_size, const char *dest, char *why, size_t whylen)
{
    if (mkdir(dest, 0700) != 0) {
        int e = errno;
        snprintf(why, whylen, "cannot make the backup directory %s: %s%s", dest, strerror(e),
                 e == EEXIST ? " (give a new directory)" : "");
        return e == EEXIST ? SOFFA_ERR_EXISTS : soffa_err_from_errno(e);
    }
    if (chmod(dest, 0700) != 0) {
        snprintf(why, whylen, "cannot make %s owner-only: %s", dest, strerror(errno));
        return soffa_err_from_errno(errno);
    }
    MDB_env *env = NULL;
    int mrc = mdb_env_create(&env);
    if (mrc == 0) {
        mdb_env_set_maxdbs(env, 16);
        mdb_env_set_mapsize(env, map_size ? map_size : (size_t) 1 << 30);
        if ((mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) == 0)
            mrc = mdb_env_copy2(env, dest, MDB_CP_COMPACT);
    }
    if (env)
        mdb_env_close(env);
    if (mrc != 0) {
        snprintf(why, whylen, "copying the store to %s failed: %s", dest, mdb_strerror(mrc));
        return soffa_store_err(mrc);
    }
    char from[1100], to[1100];
    snprintf(to, sizeof to, "%s/data.mdb", dest);
    if (chmod(to, 0600) != 0) {
        snprintf(why, whylen, "cannot make %s owner-only: %s", to, strerror(errno));
        return soffa_err_from_errno(errno);
    }
    snprintf(from, sizeof from, "%s/subject.key", dir);
    snprintf(to, sizeof to, "%s/subject.key", dest);
    if (access(from, F_OK) == 0) {
        soffa_err_t rc = s_copy_file(from, to);
        if (rc != SOFFA_OK) {
            snprintf(why, whylen, "copying %s to the backup failed: %s", from, soffa_strerror(rc));
            return rc;
        }
    }
    int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        if (dfd >= 0)
            close(dfd);
        snprintf(why, whylen, "cannot flush %s", dest);
        return SOFFA_ERR_IO;
    }
    close(dfd);
    return SOFFA_OK;
}

soffa_err_t
soffa_maint_upgrade(soffa_broker_t *self, const char *backup_dir, FILE *out, char *why, size_t whylen)
{
    char path[1024];
    if (!soffa_cfg_path(self->config_path, self->cfg.data_dir, path, sizeof path)) {
        snprintf(why, whylen, "[broker] data_dir is too long a path");
        return SOFFA_ERR_CONFIG;
    }
    char data[1100];
    snprintf(data, sizeof data, "%s/data.mdb", path);
    if (access(data, F_OK) != 0) {
        snprintf(why, whylen, "there is no store at %s to upgrade", path);
        return SOFFA_ERR_NOT_FOUND;
    }
    pid_t pid = s_other_user(path);
    if (pid) {
        snprintf(why, whylen, "the store at %s is open in process %d (a running soffa-broker, or a backup): stop it "
                              "first", path, (int) pid);
        return SOFFA_ERR_UNAVAILABLE;
    }
    char version[16];
    soffa_err_t rc = s_version_of(path, self->cfg.map_size, version);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "cannot read the store at %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    if (!strcmp(version, "4")) {
        fprintf(out, "store %s is already in format 4; nothing to do\n", path);
        return SOFFA_OK;
    }
    if (strcmp(version, "2") && strcmp(version, "3")) {
        snprintf(why, whylen, "the store at %s has format '%s', which this soffa-broker cannot convert", path, version);
        return SOFFA_ERR_VERSION;
    }
    if (!backup_dir || !backup_dir[0]) {
        snprintf(why, whylen, "an upgrade converts the store in place: give --backup DIR (a new directory, on another "
                              "disk if you can), where the old store is copied first");
        return SOFFA_ERR_CONFIG;
    }
    /* The master key before anything: the new format is sealed under it. */
    if ((rc = soffa_broker_master_load(self, why, whylen)) != SOFFA_OK)
        return rc;
    if ((rc = s_backup_old(path, self->cfg.map_size, backup_dir, why, whylen)) != SOFFA_OK)
        return rc;
    char copied[16];
    if (s_version_of(backup_dir, self->cfg.map_size, copied) != SOFFA_OK || strcmp(copied, version) != 0) {
        snprintf(why, whylen, "the copy at %s does not read back as the store it was copied from; nothing was "
                              "converted", backup_dir);
        return SOFFA_ERR_STORE_IO;
    }
    fprintf(out, "copied the format-%s store %s to %s\n", version, path, backup_dir);
    char from[8];
    rc = soffa_store_upgrade(path, self->cfg.map_size, &self->master, soffa_retain_upgrade_sched, self, from);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "the upgrade of %s failed (%s); the store is as it was, and the copy is at %s", path,
                 soffa_strerror(rc), backup_dir);
        return rc;
    }
    /* The converted store proves itself: every hash, legacy records opened
     * and hashed with the master key, every signed checkpoint. */
    soffa_store_t *st = NULL;
    char swhy[512] = "";
    soffa_store_opts_t so = {.path = path, .map_size = self->cfg.map_size, .read_only = true, .master = &self->master,
                             .why = swhy, .whylen = sizeof swhy};
    if ((rc = soffa_store_open(&st, &so)) != SOFFA_OK) {
        snprintf(why, whylen, "the converted store does not open: %s; restore it from %s", swhy[0] ? swhy : soffa_strerror(rc),
                 backup_dir);
        return rc;
    }
    soffa_store_verify_t rep;
    rc = soffa_store_verify(st, NULL, &rep);
    soffa_store_close(&st);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "the converted store does not verify at seq %llu: %s; restore it from %s",
                 (unsigned long long) rep.bad_seq, rep.reason, backup_dir);
        return rc;
    }
    char idhex[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&self->master, idhex);
    fprintf(out,
            "store %s upgraded from format %s to 4, sealed under master key %s: %llu record(s) and %llu signed "
            "checkpoint(s) verify, every record opened and hashed with the master key\n"
            "The copy at %s holds the old store, personal data in clear and readable without any key: once the "
            "broker runs on the new store, delete it (shred it on a disk that is not encrypted).\n",
            path, from, idhex, (unsigned long long) rep.records, (unsigned long long) rep.checkpoints, backup_dir);
    return SOFFA_OK;
}

soffa_err_t
soffa_maint_rotate_master(soffa_broker_t *self, const char *new_key, FILE *out, char *why, size_t whylen)
{
    char path[1024];
    if (!soffa_cfg_path(self->config_path, self->cfg.data_dir, path, sizeof path)) {
        snprintf(why, whylen, "[broker] data_dir is too long a path");
        return SOFFA_ERR_CONFIG;
    }
    char data[1100];
    snprintf(data, sizeof data, "%s/data.mdb", path);
    if (access(data, F_OK) != 0) {
        snprintf(why, whylen, "there is no store at %s whose master key could be rotated", path);
        return SOFFA_ERR_NOT_FOUND;
    }
    pid_t pid = s_other_user(path);
    if (pid) {
        snprintf(why, whylen, "the store at %s is open in process %d (a running soffa-broker, or a backup): stop it "
                              "first", path, (int) pid);
        return SOFFA_ERR_UNAVAILABLE;
    }
    soffa_err_t rc = soffa_broker_master_load(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    /* The new key under the same rules as [keys] master_key (outside the
     * data directory, owner-only), relative to the working directory. */
    soffa_seal_master_t m;
    char kwhy[900] = "";
    if ((rc = soffa_seal_master_load(new_key, NULL, path, &m, kwhy, sizeof kwhy)) != SOFFA_OK) {
        snprintf(why, whylen, "the new master key: %s", kwhy);
        return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_ERR_MASTER_KEY : rc;
    }
    soffa_store_t *st = NULL;
    char swhy[512] = "";
    soffa_store_opts_t so = {.path = path, .map_size = self->cfg.map_size, .master = &self->master, .why = swhy,
                             .whylen = sizeof swhy};
    if ((rc = soffa_store_open(&st, &so)) != SOFFA_OK) {
        snprintf(why, whylen, "%s", swhy[0] ? swhy : soffa_strerror(rc));
        soffa_seal_master_wipe(&m);
        return rc;
    }
    char oldhex[2 * SOFFA_SEAL_ID + 1], newhex[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&self->master, oldhex);
    soffa_seal_master_id_hex(&m, newhex);
    rc = soffa_store_master_rotate(st, &m);
    soffa_store_close(&st);
    soffa_seal_master_wipe(&m);
    if (rc == SOFFA_ERR_EXISTS) {
        snprintf(why, whylen, "%s is master key %s, the one in force already: make a new one with soffa masterkey "
                              "new FILE", new_key, newhex);
        return rc;
    }
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "the rotation failed (%s); the store still opens with master key %s", soffa_strerror(rc),
                 oldhex);
        return rc;
    }
    fprintf(out,
            "store %s: its epoch key is now wrapped by master key %s instead of %s. Point [keys] master_key at %s "
            "before the broker starts again. Keep the old key while backups made under it are kept (they need it), "
            "then destroy it.\n",
            path, newhex, oldhex, new_key);
    return SOFFA_OK;
}
