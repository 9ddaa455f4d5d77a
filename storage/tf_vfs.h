/*  tf_vfs — SQLite's default VFS, with a WAL's frames written in one
    pwrite per commit instead of two per page (tf_vfs.c says when the
    buffer is written), and WAL space written ahead (tf_vfs_reserve_wal).
    The store's writing connection opens with it; the read-only ones need
    nothing of it.
*/
#ifndef TF_VFS_H_INCLUDED
#define TF_VFS_H_INCLUDED

#include <sqlite3.h>

/*  The VFS's name for sqlite3_open_v2, registered on the first call; NULL
    (SQLite's default) when the default VFS is too old to wrap. */
const char *tf_vfs_name (void);

/*  Makes the WAL of `db`'s main database at least `bytes` long: zeros
    written past its end and synced. A commit that overwrites WAL space
    syncs its data only; the fdatasync of one that grows the file also
    writes the file's new size (the inode, or a journal commit), which
    took 166 µs against 96 (p50 of a 4 KiB write appended or in place,
    techfeed-bench's machine rows, ext4). SQLite ignores the
    zeros: a frame is read only under a valid header. SQLITE_OK;
    SQLITE_NOTFOUND when `db` does not use this VFS or has no WAL open;
    else the I/O error of the write or sync, with the WAL cut back to its
    size before. */
int tf_vfs_reserve_wal (sqlite3 *db, sqlite3_int64 bytes);

#endif
