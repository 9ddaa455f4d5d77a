/*  tf_vfs — see tf_vfs.h.

    SQLite writes each WAL frame as two writes, its 24-byte header and
    then its page, so a commit of n pages costs 2n pwrite calls. This VFS
    is the default one except for the WAL: consecutive writes gather in a
    buffer and go out as one pwrite when the commit's last page is in
    (the frame header's "database size after commit" field is not zero),
    or sooner when SQLite does anything else with the file (read, sync,
    truncate, size, file control, close), when a write does not follow the
    buffered run, when the buffer is full, and when the database file's
    shared-memory index is touched (lock, barrier, unmap): another
    connection learns of frames only through that index, so none can read
    a frame still in the buffer.

    Errors: a flush at a frame write, sync, truncate, read or index lock
    returns the write's error to SQLite, which then fails the statement
    (a COMMIT: nothing of the transaction is stored). The flushes at the
    index's barrier and unmap cannot report one (they return nothing) and
    are only a safety net: SQLite publishes a commit in the index after
    writing its last page, which flushed the buffer already.

    tf_vfs_reserve_wal is a file control of the main database file
    (TF_VFS_FCNTL_RESERVE_WAL), which reaches the WAL through the link the
    WAL's open made; it only ever writes past the file's end.
*/
#include "tf_vfs.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TF_VFS_NAME "techfeed"
#define TF_VFS_BUFFER (1u << 20)            /* one flush per MiB of frames at most */
#define TF_WAL_FRAME_HEADER 24              /* WAL format: bytes before each page */
#define TF_VFS_FCNTL_RESERVE_WAL 0x54460001 /* file control of a main database: 'TF' 1 */
/*  Reserved WAL space is written a page at a time: a larger write puts the
    file in larger page-cache folios (Linux 6.18, ext4), and a commit that
    writes into part of one dirties all of it. With 64 KiB writes
    /proc/PID/io counted 85 KiB written per serial put, with these 23. */
#define TF_VFS_FILL 4096
/*  The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the
    size with 0x1ffff) and takes a larger write for a full disk. */
#define TF_VFS_WRITE_MAX (64u << 10)

typedef struct s_file s_file_t;
struct s_file {
    sqlite3_file base;  /* pMethods = &s_io */
    sqlite3_file *real; /* the default VFS's file, right after this struct */
    bool is_wal;
    s_file_t *wal;       /* a main database: its WAL, while open */
    s_file_t *db;        /* a WAL: its main database */
    unsigned char *buf;  /* WAL: frames not written yet ... */
    size_t used;         /* ... this many bytes of them ... */
    sqlite3_int64 start; /* ... from this offset */
    bool commit_next;    /* the next write is a commit frame's page */
};

static sqlite3_vfs s_vfs;
static sqlite3_vfs *s_default;

/*  Writes the buffered run; SQLITE_OK or SQLite's I/O error. */
static int s_flush (s_file_t *self)
{
    if (!self || self->used == 0)
        return SQLITE_OK;
    int rc = SQLITE_OK;
    for (size_t done = 0; rc == SQLITE_OK && done < self->used; done += TF_VFS_WRITE_MAX) {
        size_t size = self->used - done < TF_VFS_WRITE_MAX ? self->used - done : TF_VFS_WRITE_MAX;
        rc = self->real->pMethods->xWrite (self->real, self->buf + done, (int) size,
                                           self->start + (sqlite3_int64) done);
    }
    self->used = 0;
    return rc;
}

static int s_close (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    int flushed = s_flush (self);
    if (self->db && self->db->wal == self)
        self->db->wal = NULL;
    if (self->wal && self->wal->db == self)
        self->wal->db = NULL;
    free (self->buf);
    int rc = self->real->pMethods ? self->real->pMethods->xClose (self->real) : SQLITE_OK;
    return flushed != SQLITE_OK ? flushed : rc;
}

static int s_read (sqlite3_file *file, void *data, int size, sqlite3_int64 offset)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush (self);
    return rc != SQLITE_OK ? rc : self->real->pMethods->xRead (self->real, data, size, offset);
}

/*  Whether `data` is a WAL frame header whose frame ends a transaction. */
static bool s_is_commit_header (const void *data, int size)
{
    if (size != TF_WAL_FRAME_HEADER)
        return false;
    const unsigned char *p = (const unsigned char *) data;
    return (p[4] | p[5] | p[6] | p[7]) != 0;
}

static int s_wal_write (s_file_t *self, const void *data, int size, sqlite3_int64 offset)
{
    bool follows = self->used && offset == self->start + (sqlite3_int64) self->used;
    if (self->used && (!follows || self->used + (size_t) size > TF_VFS_BUFFER)) {
        int rc = s_flush (self);
        if (rc != SQLITE_OK)
            return rc;
    }
    if ((size_t) size > TF_VFS_BUFFER)
        return self->real->pMethods->xWrite (self->real, data, size, offset);
    if (!self->buf && !(self->buf = (unsigned char *) malloc (TF_VFS_BUFFER)))
        return SQLITE_IOERR_NOMEM;
    if (self->used == 0)
        self->start = offset;
    memcpy (self->buf + self->used, data, (size_t) size);
    self->used += (size_t) size;
    bool ends_commit = self->commit_next;
    self->commit_next = s_is_commit_header (data, size);
    return ends_commit ? s_flush (self) : SQLITE_OK;
}

static int s_write (sqlite3_file *file, const void *data, int size, sqlite3_int64 offset)
{
    s_file_t *self = (s_file_t *) file;
    if (self->is_wal)
        return s_wal_write (self, data, size, offset);
    return self->real->pMethods->xWrite (self->real, data, size, offset);
}

static int s_truncate (sqlite3_file *file, sqlite3_int64 size)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush (self);
    return rc != SQLITE_OK ? rc : self->real->pMethods->xTruncate (self->real, size);
}

static int s_sync (sqlite3_file *file, int flags)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush (self);
    return rc != SQLITE_OK ? rc : self->real->pMethods->xSync (self->real, flags);
}

static int s_file_size (sqlite3_file *file, sqlite3_int64 *size)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush (self);
    return rc != SQLITE_OK ? rc : self->real->pMethods->xFileSize (self->real, size);
}

static int s_lock (sqlite3_file *file, int level)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xLock (self->real, level);
}

static int s_unlock (sqlite3_file *file, int level)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xUnlock (self->real, level);
}

static int s_check_reserved (sqlite3_file *file, int *out)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xCheckReservedLock (self->real, out);
}

/*  tf_vfs_reserve_wal on the WAL file `self`. */
static int s_reserve (s_file_t *self, sqlite3_int64 bytes)
{
    static const unsigned char zeros[TF_VFS_FILL];
    const sqlite3_io_methods *real = self->real->pMethods;
    sqlite3_int64 size = 0;
    int rc = s_flush (self);
    if (rc == SQLITE_OK)
        rc = real->xFileSize (self->real, &size);
    if (rc != SQLITE_OK || size >= bytes)
        return rc;
    for (sqlite3_int64 at = size; rc == SQLITE_OK && at < bytes;) {
        int n = TF_VFS_FILL - (int) (at % TF_VFS_FILL); // page-aligned after the first
        rc = real->xWrite (self->real, zeros, n, at);
        at += n;
    }
    if (rc == SQLITE_OK)
        rc = real->xSync (self->real, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) {
        int saved = errno; // the write's, for the caller's message
        (void) real->xTruncate (self->real, size);
        errno = saved;
    }
    return rc;
}

static int s_file_control (sqlite3_file *file, int op, void *arg)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush (self);
    if (rc != SQLITE_OK)
        return rc;
    if (op == TF_VFS_FCNTL_RESERVE_WAL)
        return self->wal ? s_reserve (self->wal, *(sqlite3_int64 *) arg) : SQLITE_NOTFOUND;
    if (op == SQLITE_FCNTL_VFSNAME) {
        //  What PRAGMA vfs_list and sqlite3_file_control report.
        int inner = self->real->pMethods->xFileControl (self->real, op, arg);
        if (inner == SQLITE_OK && *(char **) arg) {
            char *name = sqlite3_mprintf ("%s/%z", TF_VFS_NAME, *(char **) arg);
            *(char **) arg = name;
        } else
            *(char **) arg = sqlite3_mprintf ("%s", TF_VFS_NAME);
        return SQLITE_OK;
    }
    return self->real->pMethods->xFileControl (self->real, op, arg);
}

static int s_sector_size (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xSectorSize (self->real);
}

static int s_device_characteristics (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xDeviceCharacteristics (self->real);
}

static int s_shm_map (sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xShmMap (self->real, page, size, extend, out);
}

static int s_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush (self->wal);
    return rc != SQLITE_OK ? rc : self->real->pMethods->xShmLock (self->real, offset, n, flags);
}

static void s_shm_barrier (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    (void) s_flush (self->wal); // see the file's comment: already empty at a commit
    self->real->pMethods->xShmBarrier (self->real);
}

static int s_shm_unmap (sqlite3_file *file, int delete_flag)
{
    s_file_t *self = (s_file_t *) file;
    (void) s_flush (self->wal);
    return self->real->pMethods->xShmUnmap (self->real, delete_flag);
}

static int s_fetch (sqlite3_file *file, sqlite3_int64 offset, int size, void **out)
{
    s_file_t *self = (s_file_t *) file;
    if (self->real->pMethods->iVersion < 3) { // no memory mapping: SQLite reads instead
        *out = NULL;
        return SQLITE_OK;
    }
    int rc = s_flush (self);
    return rc != SQLITE_OK ? rc : self->real->pMethods->xFetch (self->real, offset, size, out);
}

static int s_unfetch (sqlite3_file *file, sqlite3_int64 offset, void *page)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->iVersion < 3
               ? SQLITE_OK
               : self->real->pMethods->xUnfetch (self->real, offset, page);
}

static const sqlite3_io_methods s_io = {
    .iVersion = 3,
    .xClose = s_close,
    .xRead = s_read,
    .xWrite = s_write,
    .xTruncate = s_truncate,
    .xSync = s_sync,
    .xFileSize = s_file_size,
    .xLock = s_lock,
    .xUnlock = s_unlock,
    .xCheckReservedLock = s_check_reserved,
    .xFileControl = s_file_control,
    .xSectorSize = s_sector_size,
    .xDeviceCharacteristics = s_device_characteristics,
    .xShmMap = s_shm_map,
    .xShmLock = s_shm_lock,
    .xShmBarrier = s_shm_barrier,
    .xShmUnmap = s_shm_unmap,
    .xFetch = s_fetch,
    .xUnfetch = s_unfetch,
};

static int s_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
    (void) vfs;
    s_file_t *self = (s_file_t *) file;
    memset (self, 0, sizeof *self);
    self->real = (sqlite3_file *) (self + 1);
    int rc = s_default->xOpen (s_default, name, self->real, flags, out_flags);
    //  SQLite calls xClose whenever pMethods is set, even after a failed
    //  open: ours then closes the default VFS's file, if it has one.
    self->base.pMethods = self->real->pMethods ? &s_io : NULL;
    if (rc != SQLITE_OK || !self->real->pMethods)
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    if ((flags & SQLITE_OPEN_WAL) && name) {
        self->is_wal = true;
        self->db = (s_file_t *) sqlite3_database_file_object (name);
        if (self->db && self->db->base.pMethods == &s_io)
            self->db->wal = self;
        else
            self->db = NULL;
    }
    return SQLITE_OK;
}

/*  The rest is the default VFS's own. */
static int s_delete (sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void) vfs;
    return s_default->xDelete (s_default, name, sync_dir);
}

static int s_access (sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void) vfs;
    return s_default->xAccess (s_default, name, flags, out);
}

static int s_full_pathname (sqlite3_vfs *vfs, const char *name, int size, char *out)
{
    (void) vfs;
    return s_default->xFullPathname (s_default, name, size, out);
}

static int s_randomness (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    return s_default->xRandomness (s_default, size, out);
}

static int s_sleep (sqlite3_vfs *vfs, int us)
{
    (void) vfs;
    return s_default->xSleep (s_default, us);
}

static int s_current_time (sqlite3_vfs *vfs, double *out)
{
    (void) vfs;
    return s_default->xCurrentTime (s_default, out);
}

static int s_last_error (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    return s_default->xGetLastError (s_default, size, out);
}

static int s_current_time_64 (sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void) vfs;
    return s_default->xCurrentTimeInt64 (s_default, out);
}

static bool s_registered;

static void s_register (void)
{
    s_default = sqlite3_vfs_find (NULL);
    if (!s_default || s_default->iVersion < 2)
        return;
    s_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int) sizeof (s_file_t) + s_default->szOsFile,
        .mxPathname = s_default->mxPathname,
        .zName = TF_VFS_NAME,
        .xOpen = s_open,
        .xDelete = s_delete,
        .xAccess = s_access,
        .xFullPathname = s_full_pathname,
        .xRandomness = s_randomness,
        .xSleep = s_sleep,
        .xCurrentTime = s_current_time,
        .xGetLastError = s_last_error,
        .xCurrentTimeInt64 = s_current_time_64,
    };
    s_registered = sqlite3_vfs_register (&s_vfs, 0) == SQLITE_OK;
}

int tf_vfs_reserve_wal (sqlite3 *db, sqlite3_int64 bytes)
{
    return sqlite3_file_control (db, "main", TF_VFS_FCNTL_RESERVE_WAL, &bytes);
}

const char *tf_vfs_name (void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_register);
    return s_registered ? TF_VFS_NAME : NULL;
}
