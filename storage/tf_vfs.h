/*  tf_vfs — SQLite's default VFS, with a WAL's frames written in one
    pwrite per commit instead of two per page (tf_vfs.c says when the
    buffer is written). The store's writing connection opens with it; the
    read-only ones need nothing of it.
*/
#ifndef TF_VFS_H_INCLUDED
#define TF_VFS_H_INCLUDED

#include <sqlite3.h>

/*  The VFS's name for sqlite3_open_v2, registered on the first call; NULL
    (SQLite's default) when the default VFS is too old to wrap. */
const char *tf_vfs_name (void);

#endif
