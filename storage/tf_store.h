/*  tf_store — the techfeed database: records, the change log, the epoch.

    One writer connection owned by one thread. A write transaction groups any
    number of puts and deletes (group commit); each appends a row to the
    change log, the truth, keyed by the global sequence. Revisions and
    sectors are checked against an in-memory index, so a write appends and
    looks nothing up; the records table follows the log in batches
    (tf_store_apply).

    Reads for sync (snapshot, catch-up) go through cursors that each own a
    read-only connection holding one read transaction, so a snapshot is
    consistent while writers go on (WAL).

    Return codes: 0 on success, or one of TF_STORE_* below (all negative).
    On TF_STORE_ERROR / TF_STORE_FULL, tf_store_errstr() says why.
*/
#ifndef TF_STORE_H_INCLUDED
#define TF_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "techfeed.pb-c.h"

#define TF_STORE_OK 0
#define TF_STORE_ERROR -1     /* SQLite failed (I/O, corrupt, busy...) */
#define TF_STORE_CONFLICT -2  /* expected revision does not match */
#define TF_STORE_NOT_FOUND -3 /* no such id */
#define TF_STORE_FULL -4      /* disk or database full (SQLITE_FULL) */
#define TF_STORE_IMMUTABLE -5 /* put would change a stored record's sector */
#define TF_STORE_TRIMMED -6   /* catch-up position below the retained log */

typedef struct _tf_store_t tf_store_t;
typedef struct _tf_store_cursor_t tf_store_cursor_t;

/*  What one put or delete did. */
typedef struct {
    uint64_t sequence;             /* change log sequence */
    uint64_t revision;             /* revision after the change (delete: the deleted one) */
    uint64_t current_revision;     /* on TF_STORE_CONFLICT: stored revision, 0 if absent */
    uint64_t sector_prev_sequence; /* previous change in the same sector, 0 if none */
    int sector;                    /* sector of the record */
    int64_t timestamp_ms;          /* the now_ms passed in */
    const uint8_t *body;           /* a put: the stored record bytes (revision and
                                      updated_at set), valid until the next call */
    size_t body_size;
} tf_change_t;

/*  Summary of the committed state. */
typedef struct {
    char epoch[33];              /* 32 hex digits, made when the file was created */
    uint64_t head_sequence;      /* last sequence, 0 when the log is empty */
    uint64_t applied_sequence;   /* the records table reflects the log up to here */
    uint64_t log_first_sequence; /* oldest sequence retained, head+1 when empty */
    uint64_t record_count;
    uint64_t digest;           /* see tf_wire.h tf_digest_item */
    uint64_t sector_heads[11]; /* last sequence per sector value, index 1..10 */
    uint64_t index_bytes;      /* memory of the id and request-id indexes */
} tf_store_state_t;

/*  Opens or creates the database at `path` (not ":memory:": cursors open
    their own connections to the same file), applies migrations, sets WAL,
    synchronous=FULL and the busy timeout. NULL on failure with a message in
    `err` (a corrupt or foreign file is refused, never repaired). */
tf_store_t *tf_store_new (const char *path, char *err, size_t errlen);
void tf_store_destroy (tf_store_t **self_p);

/*  Last error message; owned by the store, valid until the next call. */
const char *tf_store_errstr (tf_store_t *self);
const char *tf_store_path (tf_store_t *self);
const char *tf_store_epoch (tf_store_t *self);

/*  Gives the database a new random epoch (own transaction). The service
    does this when it finds the database older than what it already served
    (restored from a copy), so clients resync instead of trusting reused
    sequence numbers. */
int tf_store_new_epoch (tf_store_t *self);

/*  SQLite's automatic checkpoint threshold in WAL pages (0: off, when a
    tf_checkpointer does it off the commit path). */
int tf_store_set_autocheckpoint (tf_store_t *self, int pages);
/*  With automatic checkpoints off: the WAL's size in pages after the last
    commit (0 once a checkpoint copied all of it: the next commit starts
    it over), and a PASSIVE checkpoint made by the writer itself between
    transactions. Under sustained writes a checkpointer on another
    connection never catches up with the writer, so the WAL would only
    grow; a checkpoint between two of the writer's transactions copies
    everything (unless a reader still needs old pages) and the next commit
    starts the WAL over. While another connection's checkpoint runs, this
    one copies nothing and returns 0: the WAL keeps its size, and the
    caller tries again later. */
int tf_store_wal_pages (tf_store_t *self);
int tf_store_checkpoint (tf_store_t *self);
/*  Makes the WAL file at least `bytes` long, written ahead (zeros) so
    that commits overwrite it instead of growing it, which costs each
    such commit's fdatasync a write of the file's new size besides its
    data (tf_vfs_reserve_wal). SQLite keeps the file's size between its
    rounds (journal_size_limit, 64 MiB) and deletes it at the last close.
    On failure (a full disk) the WAL keeps its size and errstr says why. */
int tf_store_reserve_wal (tf_store_t *self, int64_t bytes);

/*  Whether a write transaction commits now: one that rewrites the state
    row as it is, synced like any commit. 0, or the store's error code
    (STORAGE_FULL while the disk is full) with errstr saying why. */
int tf_store_probe_write (tf_store_t *self);

/*  Schema version this code writes (PRAGMA user_version). */
int tf_store_schema_version (void);

/*  Committed state (reads the database; cheap). Called inside an open
    write transaction it includes that transaction's changes. */
int tf_store_state (tf_store_t *self, tf_store_state_t *state);

/*  Write transactions: BEGIN IMMEDIATE ... COMMIT. Savepoints nest inside
    (a failed item is undone without undoing its neighbours). */
int tf_store_begin (tf_store_t *self);
int tf_store_commit (tf_store_t *self);
int tf_store_rollback (tf_store_t *self);
int tf_store_savepoint (tf_store_t *self);
int tf_store_release (tf_store_t *self);
int tf_store_rollback_to (tf_store_t *self); /* undo to and release the innermost savepoint */

/*  Inside a transaction. `record` must already be valid (tf_validate).
    expected_revision applies when has_expected is true: 0 means "must not
    exist". The stored record gets revision old+1 and updated_at = now_ms.
    A refusal (TF_STORE_CONFLICT, _NOT_FOUND, _IMMUTABLE) is decided before
    anything is written, so the enclosing transaction goes on. After
    TF_STORE_ERROR or TF_STORE_FULL the item may be half written: roll the
    transaction back (or back to a savepoint taken before the item). Called
    outside a transaction, a put or delete is a transaction by itself.
    Record count, digest and sector heads are kept in memory during a
    transaction and written once at commit. `change` may be NULL. */
int tf_store_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                  uint64_t expected_revision, int64_t now_ms, tf_change_t *change);
int tf_store_delete (tf_store_t *self, const char *id, bool has_expected,
                     uint64_t expected_revision, int64_t now_ms, tf_change_t *change);

/*  Idempotency cache: the packed reply of a request id, written inside the
    same transaction as its changes. get returns TF_STORE_NOT_FOUND when
    absent (errstr untouched: it is every new request's case); *reply is
    malloc'd, caller frees. */
int tf_store_request_get (tf_store_t *self, const char *request_id, uint8_t **reply, size_t *size);
int tf_store_request_put (tf_store_t *self, const char *request_id, const uint8_t *reply,
                          size_t size, int64_t now_ms);
/*  Housekeeping goes in steps of at most this many rows, each its own
    transaction on the writer's connection, so that a backlog of expired
    rows never holds writes up for long. */
#define TF_STORE_STEP_ROWS 2000

/*  Forgets request ids older than before_ms, and the oldest beyond the
    newest keep_max (0: no count bound), oldest first: one step of at most
    TF_STORE_STEP_ROWS. Returns 1 when the step was full (call again), 0
    when nothing more was due, or an error. Outside a transaction. The
    cache is an append-only table; the ids are looked up in memory. */
int tf_store_request_expire (tf_store_t *self, int64_t before_ms, uint64_t keep_max);

/*  Copies committed changes the records table does not have yet into it:
    at most `max` (0: all) in one transaction, each id once, in id order.
    The write path only appends to the log; this brings `records` (what
    snapshots and plain-SQL readers see) up to date behind it, in batches.
    tf_store_apply is for the writer's thread, outside a transaction
    (errors in tf_store_errstr); tf_store_apply_from is for one other
    thread, a tf_applier (errors in `err`). The store is otherwise owned by
    one thread: a lock lets the applier's batches run on the writer's
    connection between the writer's transactions. */
int tf_store_apply (tf_store_t *self, size_t max);
int tf_store_apply_from (tf_store_t *self, size_t max, char *err, size_t errlen);
/*  Committed changes not yet in records (any thread). */
uint64_t tf_store_unapplied (tf_store_t *self);

/*  How the one writer connection was shared since open, in nanoseconds:
    held by the store's caller (the writer's thread, from its first call
    until no transaction is open) and by the applier (tf_store_apply_from),
    and how long the writer's thread waited for it while the applier had
    it. Atomics: any thread, no lock. */
typedef struct {
    uint64_t writer_held_ns;
    uint64_t writer_wait_ns;
    uint64_t applier_held_ns;
} tf_store_lock_stats_t;
void tf_store_lock_stats (tf_store_t *self, tf_store_lock_stats_t *stats);

/*  Log retention: deletes the oldest changes so that at most keep_count
    remain and, by age, those before the first one (by sequence) not older
    than before_ms (0 disables either bound). Only ever a prefix of the
    log: a change stamped older than one before it (the clock stepped
    back) stays until that one goes. The latest change of each record is
    never needed for a snapshot, so trimming only affects catch-up. The head sequence and sector heads survive trimming
    the whole log. Changes the records table does not have yet (see
    tf_store_unapplied) are kept whatever the bounds: they go in a later
    call, once the applier has them. Outside a transaction. Like
    tf_store_request_expire, one step of at most TF_STORE_STEP_ROWS, oldest
    first: 1 when the step was full (call again), 0 when done. */
int tf_store_trim (tf_store_t *self, uint64_t keep_count, int64_t before_ms);

/*  Record by id. *record is caller-owned (techfeed__milestone__free_unpacked). */
int tf_store_get (tf_store_t *self, const char *id, Techfeed__Milestone **record);

/*  Snapshot cursor: records matching `filter` (NULL = all) in id order, as
    of the head (tf_store_cursor_sequence): the records table, with the
    log's changes it does not have yet merged in (decoded, never applied
    here). Holds a read transaction on its own connection until destroyed.
    NULL on error (errstr says why). */
tf_store_cursor_t *tf_store_snapshot_open (tf_store_t *self, const Techfeed__Filter *filter);

/*  Catch-up cursor: changes with sequence > since in `filter`'s sectors, in
    sequence order. NULL with *rc = TF_STORE_TRIMMED when since+1 is below
    the oldest retained change (and since is not the head), and also when
    since is beyond the head (a position from another epoch or a newer copy
    of the file): either way the client must take a snapshot. Only the
    filter's sectors apply here. */
tf_store_cursor_t *tf_store_changes_open (tf_store_t *self, uint64_t since,
                                          const Techfeed__Filter *filter, int *rc);

/*  The same cursors in two steps, for a caller that opens them off the
    store's thread (the service's reader): tf_store_cursor_new takes what
    to read (a snapshot, or changes after `since`; the filter is copied)
    and does no I/O; tf_store_cursor_begin then opens the connection and
    the read transaction, and reads a snapshot's unapplied tail. It touches
    nothing of the store, so it may run on any thread. Returns TF_STORE_OK,
    TF_STORE_TRIMMED (as tf_store_changes_open) or TF_STORE_ERROR, the
    reason in tf_store_cursor_errstr; the caller destroys the cursor either
    way. */
tf_store_cursor_t *tf_store_cursor_new (tf_store_t *self, bool changes, uint64_t since,
                                        const Techfeed__Filter *filter);
int tf_store_cursor_begin (tf_store_cursor_t *cursor);

/*  Sequence the cursor's read transaction sees (its head at open). */
uint64_t tf_store_cursor_sequence (tf_store_cursor_t *cursor);
/*  Per-sector heads as of the cursor's read transaction (index 1..10). */
const uint64_t *tf_store_cursor_sector_heads (tf_store_cursor_t *cursor);
/*  Why tf_store_cursor_begin or the last next_record/next_change failed;
    owned by the cursor. (tf_store_snapshot_open and tf_store_changes_open
    put theirs in tf_store_errstr.) */
const char *tf_store_cursor_errstr (tf_store_cursor_t *cursor);
/*  1 with *record set (caller-owned), 0 at the end, TF_STORE_ERROR. */
int tf_store_cursor_next_record (tf_store_cursor_t *cursor, Techfeed__Milestone **record);
/*  Snapshot cursors: 1 with the next record's stored bytes (a packed
    Milestone, borrowed until the next call), 0 at the end, TF_STORE_ERROR. */
int tf_store_cursor_next_body (tf_store_cursor_t *cursor, const void **body, size_t *size);
/*  Catch-up cursors: 1 with `event` (caller's struct) filled but for its
    record, strings borrowed, and the stored record bytes in *body (NULL for
    a delete), all valid until the next call; 0 at the end, TF_STORE_ERROR. */
int tf_store_cursor_next_change_body (tf_store_cursor_t *cursor, Techfeed__ChangeEvent *event,
                                      const void **body, size_t *size);
/*  1 with *event set (caller-owned, epoch filled), 0 at the end, TF_STORE_ERROR. */
int tf_store_cursor_next_change (tf_store_cursor_t *cursor, Techfeed__ChangeEvent **event);
void tf_store_cursor_destroy (tf_store_cursor_t **cursor_p);

#endif
