/*  tf_mirror — a view's records and position in an SQLite file, private to
    libtechfeed (PROTOCOL.md §9 rule 7). tf_view.c calls it where the view
    applies a change (put / delete) and where a batch ends (commit, with
    the position); tf_view_store_status reads a file with it.

    Changes go into one open transaction, the batch, begun by the first
    put or delete; tf_mirror_commit writes the position into the same
    transaction and commits. A crash before the commit leaves the file as
    the last commit made it: its records and the position they are at.

    File format. An SQLite 3 database in WAL mode, synchronous=FULL (a
    committed batch survives a power loss, like the service's acks), with
    PRAGMA application_id = 0x54464D52 ('TFMR', the service's own file is
    'TFED') and PRAGMA user_version = 1. Every table is STRICT.

    records — the table of proto/tf_columns.h, the same as the service's

    mirror — where the records stand; one row (one = 1), written with
    every batch; absent until the first snapshot is in
    ----------------------------------------------------------------------
    one           INTEGER  PRIMARY KEY, always 1
    epoch         TEXT     the service's epoch the records belong to
    position      INTEGER  P: every change of the sectors up to P is in
    sectors       TEXT     the view's sector filter: '' for all sectors,
                           else their slugs by sector value ('space,rail')
    updated_ms    INTEGER  Unix ms of the last batch

    mirror_last — last[s]: the last change applied per sector, written
    with every batch
    ----------------------------------------------------------------------
    sector        INTEGER  PRIMARY KEY, sector value 1..10
    seq           INTEGER  sequence of the last change of that sector
*/
#ifndef TF_MIRROR_H_INCLUDED
#define TF_MIRROR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "techfeed.h"
#include "tf_wire.h"

#define TF_MIRROR_EPOCH_MAX 64   /* longest epoch kept (the view's limit) */
#define TF_MIRROR_SECTORS_MAX 96 /* longest sector filter text */

typedef struct _tf_mirror_t tf_mirror_t;

/*  The position the records are at. */
typedef struct {
    char epoch[TF_MIRROR_EPOCH_MAX + 1];     /* "" when the file holds no snapshot yet */
    uint64_t position;                       /* P */
    uint64_t last[TF_SECTOR_MAX + 1];        /* last[s] by sector value; [0] unused */
    char sectors[TF_MIRROR_SECTORS_MAX + 1]; /* the filter: "" all, else "space,rail" */
    int64_t updated_ms;                      /* Unix ms of the last batch (read only) */
} tf_mirror_state_t;

/*  Opens the mirror file at `path`, creating it when missing (read_only:
    never; the file must exist, and the connection writes nothing). Checks
    that it is a mirror file (not the service's database, not another
    file) and passes PRAGMA quick_check. NULL with the reason in err. */
tf_mirror_t *tf_mirror_open (const char *path, bool read_only, char *err, size_t errlen);
/*  Closes the file; an open batch is rolled back. The last connection to
    close removes the -wal and -shm files (read_only too). */
void tf_mirror_destroy (tf_mirror_t **self_p);

const char *tf_mirror_errstr (tf_mirror_t *self);
const char *tf_mirror_path (tf_mirror_t *self);

/*  The stored position (state->epoch "" when none). 0 or -1. */
int tf_mirror_state (tf_mirror_t *self, tf_mirror_state_t *state);

/*  Every stored record, decoded from its body, to `fn` (borrowed for the
    call; a non-zero return stops). -1 when the file cannot be read or a
    body does not decode. */
int tf_mirror_each (tf_mirror_t *self, tf_record_fn *fn, void *arg);

/*  Count and PROTOCOL.md §10 digest of the stored records, and the
    position, read in one transaction (from the file alone). */
int tf_mirror_summary (tf_mirror_t *self, tf_mirror_state_t *state, uint64_t *count,
                       uint64_t *digest);

/*  A put (record with its revision and updated_at_ms) or a delete, in the
    open batch (begun when none is). 0 or -1 (the batch stays open: roll
    it back). */
int tf_mirror_put (tf_mirror_t *self, const Techfeed__Milestone *record);
int tf_mirror_delete (tf_mirror_t *self, const char *id);

/*  Writes `state` (updated_ms: now) into the batch and commits it; with no
    batch open, the state alone in a transaction of its own. 0 or -1 (the
    batch is rolled back then). */
int tf_mirror_commit (tf_mirror_t *self, const tf_mirror_state_t *state);
/*  Drops the open batch, if any. */
void tf_mirror_rollback (tf_mirror_t *self);
/*  True between the first put/delete of a batch and its commit. */
bool tf_mirror_in_batch (tf_mirror_t *self);

#endif
