/*  Unit tests of the persistent view: the mirror file (clients/lib/
    tf_mirror.c) on its own — batches, the position committed with them, a
    process killed with -9 in the middle of a batch or of a stream of
    batches, foreign files — and a detached view that keeps its records in
    a file, resumes from it, and refuses a file of another sector filter.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <inttypes.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tf_fake.h"
#include "tf_mirror.h"
#include "tf_sqlcheck.h"
#include "tf_store.h"
#include "tf_testkit.h"
#include "tf_view_internal.h"
#include "tf_wire.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define EPOCH2 "fedcba9876543210fedcba9876543210"
#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define AI TECHFEED__SECTOR__SECTOR_AI
#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL

static int64_t s_now = 1000000; /* the views' monotonic clock */

typedef struct {
    char *dir;      /* temporary directory */
    char path[300]; /* dir/mirror.db */
} fixture_t;

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof *f);
    f->dir = tf_test_tempdir ();
    snprintf (f->path, sizeof f->path, "%s/mirror.db", f->dir);
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_test_rmtree (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

// --------------------------------------------------------------- helpers

/*  A record `id` of `sector` at `revision`, with list columns set. */
static void s_record_init (Techfeed__Milestone *rec, const char *id, int sector, uint64_t revision)
{
    static char *orgs[] = { (char *) "CNSA" };
    techfeed__milestone__init (rec);
    rec->id = (char *) id;
    rec->has_sector = rec->has_revision = rec->has_updated_at_ms = 1;
    rec->sector = (Techfeed__Sector) sector;
    rec->title = (char *) "a title";
    rec->date = (char *) "2019-01-03";
    rec->revision = revision;
    rec->updated_at_ms = 1795887738123;
    rec->n_organizations = 1;
    rec->organizations = orgs;
}

static void s_put (tf_mirror_t *mirror, const char *id, uint64_t revision)
{
    Techfeed__Milestone rec;
    s_record_init (&rec, id, SPACE, revision);
    assert_int_equal (tf_mirror_put (mirror, &rec), 0);
}

/*  s_put in a forked child, which must not use cmocka (a failed assert
    would run the rest of the suite in the child): exits with `code`. */
static void s_child_put (tf_mirror_t *mirror, const char *id, uint64_t revision, int code)
{
    Techfeed__Milestone rec;
    s_record_init (&rec, id, SPACE, revision);
    if (tf_mirror_put (mirror, &rec) != 0) {
        fprintf (stderr, "child: put %s failed\n", id);
        _exit (code);
    }
}

static tf_mirror_state_t s_state (const char *epoch, uint64_t position)
{
    tf_mirror_state_t state = { .position = position };
    snprintf (state.epoch, sizeof state.epoch, "%s", epoch);
    state.last[SPACE] = position;
    return state;
}

/*  PRAGMA integrity_check of the file, on a connection of its own. */
static void s_assert_intact (const char *path)
{
    char why[300];
    if (!tf_sql_intact (path, why, sizeof why))
        fail_msg ("%s: integrity_check: %s", path, why);
}

/*  Digest of records "r-1".."r-n" at revision 1. */
static uint64_t s_digest_upto (uint64_t n)
{
    uint64_t digest = 0;
    char id[32];
    for (uint64_t i = 1; i <= n; i++) {
        snprintf (id, sizeof id, "r-%" PRIu64, i);
        digest += tf_digest_item (id, 1);
    }
    return digest;
}

/*  What the file holds, from the file alone. */
static tf_view_store_status_t s_status (const char *path)
{
    tf_view_store_status_t status;
    char err[300];
    if (tf_view_store_status (path, &status, err, sizeof err) != 0)
        fail_msg ("%s", err);
    return status;
}

// --------------------------------------------------------------- the file

static void test_batch_and_position_commit_together (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char err[300];
    tf_mirror_t *mirror = tf_mirror_open (f->path, false, err, sizeof err);
    assert_non_null (mirror);
    tf_mirror_state_t st;
    assert_int_equal (tf_mirror_state (mirror, &st), 0);
    assert_string_equal (st.epoch, ""); // a new file: no position
    s_put (mirror, "a", 1);
    s_put (mirror, "b", 1);
    assert_true (tf_mirror_in_batch (mirror));
    tf_mirror_state_t two = s_state (EPOCH, 2);
    assert_int_equal (tf_mirror_commit (mirror, &two), 0);
    assert_false (tf_mirror_in_batch (mirror));
    //  An update and a delete, then dropped: the file keeps the commit
    s_put (mirror, "a", 2);
    assert_int_equal (tf_mirror_delete (mirror, "b"), 0);
    tf_mirror_rollback (mirror);
    tf_mirror_destroy (&mirror);
    tf_mirror_destroy (&mirror); // safe twice

    tf_view_store_status_t status = s_status (f->path);
    assert_string_equal (status.epoch, EPOCH);
    assert_int_equal (status.position, 2);
    assert_int_equal (status.last[SPACE], 2);
    assert_int_equal (status.record_count, 2);
    assert_int_equal (status.digest, tf_digest_item ("a", 1) + tf_digest_item ("b", 1));
    assert_true (status.updated_ms > 0);

    //  The same columns as the service's table, for plain SQL
    sqlite3 *db;
    assert_int_equal (sqlite3_open (f->path, &db), SQLITE_OK);
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db,
                                          "SELECT sector, organizations, metrics, revision,"
                                          " updated_ms FROM records WHERE id = 'a'",
                                          -1, &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (stmt, 0), SPACE);
    assert_string_equal ((const char *) sqlite3_column_text (stmt, 1), "[\"CNSA\"]");
    assert_string_equal ((const char *) sqlite3_column_text (stmt, 2), "[]");
    assert_int_equal (sqlite3_column_int (stmt, 3), 1);
    assert_int_equal (sqlite3_column_int64 (stmt, 4), 1795887738123);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
}

/*  Forks a child that runs `child` (it never returns) and waits until it
    writes a byte on `ready`: it is where the test wants it. The child
    uses no cmocka: a step that fails exits with a code of its own, which
    the parent reports (here, or in s_kill). */
static pid_t s_spawn (fixture_t *f, void (*child) (fixture_t *f, int ready))
{
    int fds[2];
    assert_int_equal (pipe (fds), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        close (fds[0]);
        child (f, fds[1]);
        _exit (9);
    }
    close (fds[1]);
    char byte;
    ssize_t got = read (fds[0], &byte, 1); // bounded: it writes or dies
    close (fds[0]);
    if (got != 1) {
        int status = 0;
        assert_int_equal (waitpid (pid, &status, 0), pid);
        fail_msg ("the child ended before it was ready: %s %d",
                  WIFEXITED (status) ? "exit" : "signal",
                  WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
    }
    return pid;
}

/*  Kills the child; it must not have ended by itself (a failed step). */
static void s_kill (pid_t pid)
{
    kill (pid, SIGKILL);
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (WIFEXITED (status))
        fail_msg ("the child failed before the kill: exit %d", WEXITSTATUS (status));
    assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
}

/*  Batch 1 (100 records, P = 100) committed, then 1000 more puts and 10
    deletes in the open batch: ready, and waits there to be killed. */
static void s_child_mid_batch (fixture_t *f, int ready)
{
    char err[300], id[32];
    tf_mirror_t *mirror = tf_mirror_open (f->path, false, err, sizeof err);
    if (!mirror)
        _exit (2);
    for (int i = 1; i <= 100; i++) {
        snprintf (id, sizeof id, "r-%d", i);
        s_child_put (mirror, id, 1, 5);
    }
    tf_mirror_state_t first = s_state (EPOCH, 100);
    if (tf_mirror_commit (mirror, &first) != 0)
        _exit (3);
    for (int i = 101; i <= 1100; i++) {
        snprintf (id, sizeof id, "r-%d", i);
        s_child_put (mirror, id, 1, 6);
    }
    for (int i = 1; i <= 10; i++) {
        snprintf (id, sizeof id, "r-%d", i);
        if (tf_mirror_delete (mirror, id) != 0)
            _exit (7);
    }
    if (write (ready, "x", 1) != 1)
        _exit (4);
    pause ();
}

/*  Batch after batch from the file's position: batch k brings 7 records
    more and P = 7k. Ready after the first. */
static void s_child_batches (fixture_t *f, int ready)
{
    char err[300], id[32];
    tf_mirror_t *mirror = tf_mirror_open (f->path, false, err, sizeof err);
    tf_mirror_state_t st;
    if (!mirror || tf_mirror_state (mirror, &st) != 0)
        _exit (2);
    for (uint64_t p = st.position;; p += 7) {
        for (uint64_t i = p + 1; i <= p + 7; i++) {
            snprintf (id, sizeof id, "r-%" PRIu64, i);
            s_child_put (mirror, id, 1, 5);
        }
        tf_mirror_state_t next = s_state (EPOCH, p + 7);
        if (tf_mirror_commit (mirror, &next) != 0)
            _exit (3);
        if (p == st.position && write (ready, "x", 1) != 1)
            _exit (4);
    }
}

/*  Killed with -9 in the middle of a batch: the file holds batch 1 and
    its position, intact. */
static void test_kill_mid_batch (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_kill (s_spawn (f, s_child_mid_batch));
    s_assert_intact (f->path);
    tf_view_store_status_t st = s_status (f->path);
    assert_int_equal (st.position, 100);
    assert_int_equal (st.record_count, 100);
    assert_int_equal (st.digest, s_digest_upto (100));
}

/*  Killed with -9 at a random moment of a stream of batches, five times
    over the same file: the records are always exactly the ones the
    position says. */
static void test_kill_during_batches (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    srand ((unsigned) getpid ());
    uint64_t position = 0;
    for (int round = 0; round < 5; round++) {
        pid_t pid = s_spawn (f, s_child_batches);
        usleep ((useconds_t) (rand () % 50000)); // a random moment, not a wait for anything
        s_kill (pid);
        s_assert_intact (f->path);
        tf_view_store_status_t st = s_status (f->path);
        print_message ("round %d: killed at position %" PRIu64 "\n", round, st.position);
        assert_true (st.position > position); // it committed at least one batch
        assert_int_equal (st.position % 7, 0);
        assert_int_equal (st.record_count, st.position);
        assert_int_equal (st.digest, s_digest_upto (st.position));
        position = st.position;
    }
}

static void test_refuses_foreign_files (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char err[300], path[400];
    //  The service's own database
    snprintf (path, sizeof path, "%s/techfeed.db", f->dir);
    tf_store_t *store = tf_store_new (path, err, sizeof err);
    assert_non_null (store);
    tf_store_destroy (&store);
    assert_null (tf_mirror_open (path, false, err, sizeof err));
    assert_non_null (strstr (err, "is a techfeed-ingestd database, not a mirror file"));
    //  Another SQLite database
    sqlite3 *db;
    snprintf (path, sizeof path, "%s/other.db", f->dir);
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    assert_null (tf_mirror_open (path, false, err, sizeof err));
    assert_non_null (strstr (err, "is not a techfeed mirror file"));
    //  ... and left as it was: not switched to WAL mode
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_string_equal ((const char *) sqlite3_column_text (stmt, 0), "delete");
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    //  Not a database
    snprintf (path, sizeof path, "%s/text", f->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("this is not a database, not even a little bit, and it is long enough\n", file);
    fclose (file);
    assert_null (tf_mirror_open (path, false, err, sizeof err));
    print_message ("text file: %s\n", err);
    //  Missing, read-only: not created
    snprintf (path, sizeof path, "%s/missing.db", f->dir);
    tf_view_store_status_t status;
    assert_int_equal (tf_view_store_status (path, &status, err, sizeof err), -1);
    assert_int_equal (access (path, F_OK), -1);
}

/*  One mirror writes a file at a time; readers (--status) go on. */
static void test_one_writer_at_a_time (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char err[300];
    tf_mirror_t *first = tf_mirror_open (f->path, false, err, sizeof err);
    assert_non_null (first);
    assert_null (tf_mirror_open (f->path, false, err, sizeof err));
    assert_non_null (strstr (err, "another mirror keeps it current already"));
    tf_mirror_t *reader = tf_mirror_open (f->path, true, err, sizeof err);
    assert_non_null (reader);
    tf_mirror_destroy (&reader);
    tf_mirror_destroy (&first);
    tf_mirror_t *next = tf_mirror_open (f->path, false, err, sizeof err);
    assert_non_null (next); // the claim went with the first
    tf_mirror_destroy (&next);
}

/*  A file the mirror cannot write is refused when opened, not at its
    first batch. As root, permissions do not stop a write: a read-only
    tmpfs does (skipped where mounting is not permitted). */
static void test_refuses_read_only_file (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char mnt[400], path[450], err[300];
    snprintf (mnt, sizeof mnt, "%s/ro", f->dir);
    assert_int_equal (mkdir (mnt, 0755), 0);
    if (mount ("tmpfs", mnt, "tmpfs", 0, "size=1m") != 0) {
        print_message ("no tmpfs (%s): not checked\n", strerror (errno));
        skip ();
    }
    snprintf (path, sizeof path, "%s/mirror.db", mnt);
    tf_mirror_t *mirror = tf_mirror_open (path, false, err, sizeof err);
    assert_non_null (mirror);
    tf_mirror_destroy (&mirror);
    int remounted = mount ("tmpfs", mnt, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=1m");
    mirror = remounted == 0 ? tf_mirror_open (path, false, err, sizeof err) : NULL;
    umount2 (mnt, MNT_DETACH);
    assert_int_equal (remounted, 0);
    assert_null (mirror);
    assert_non_null (strstr (err, "cannot write it"));
}

// --------------------------------------------------------------- the view

/*  Sector heads for a reply. */
typedef struct {
    Techfeed__SectorHead storage[2];
    Techfeed__SectorHead *pointers[2];
} s_heads_t;

static void s_heads_init (s_heads_t *heads, uint64_t space, uint64_t ai)
{
    for (int i = 0; i < 2; i++) {
        techfeed__sector_head__init (&heads->storage[i]);
        heads->storage[i].has_sector = heads->storage[i].has_sequence = 1;
        heads->pointers[i] = &heads->storage[i];
    }
    heads->storage[0].sector = SPACE;
    heads->storage[0].sequence = space;
    heads->storage[1].sector = AI;
    heads->storage[1].sequence = ai;
}

/*  One snapshot chunk of `n` records "id" sector/revision triples. */
static int s_snapshot_chunk (tf_view_t *view, const char *epoch, const char *const *ids,
                             const int *sectors, size_t n, bool end, uint64_t seq, uint64_t space,
                             uint64_t ai)
{
    Techfeed__Milestone storage[8], *pointers[8];
    assert_true (n <= 8);
    for (size_t i = 0; i < n; i++) {
        s_record_init (&storage[i], ids[i], sectors[i], 1);
        pointers[i] = &storage[i];
    }
    s_heads_t heads;
    s_heads_init (&heads, space, ai);
    Techfeed__SyncReply reply;
    tf_fake_snapshot_chunk (&reply, epoch, pointers, n, end, seq, heads.pointers, 2);
    return tf_view_sync_reply (view, &reply, s_now);
}

static void s_event (tf_view_t *view, uint64_t seq, int sector, uint64_t prev, const char *id,
                     uint64_t revision, bool put)
{
    Techfeed__ChangeEvent ev = TECHFEED__CHANGE_EVENT__INIT;
    Techfeed__Milestone rec;
    ev.epoch = (char *) EPOCH;
    ev.has_sequence = ev.has_kind = ev.has_sector = ev.has_revision = 1;
    ev.has_sector_prev_sequence = 1;
    ev.sequence = seq;
    ev.sector = (Techfeed__Sector) sector;
    ev.sector_prev_sequence = prev;
    ev.id = (char *) id;
    ev.revision = revision;
    ev.kind = put ? TECHFEED__CHANGE_KIND__CHANGE_PUT : TECHFEED__CHANGE_KIND__CHANGE_DELETE;
    if (put) {
        s_record_init (&rec, id, sector, revision);
        ev.record = &rec;
    }
    tf_view_feed_event (view, &ev, s_now);
}

static char s_saved[1024]; /* SAVED callbacks, "|"-separated */

static void s_on_view (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                       const char *id, void *arg)
{
    if (what == TF_VIEW_SAVED) {
        strncat (s_saved, id, sizeof s_saved - strlen (s_saved) - 2);
        strcat (s_saved, "|");
    }
}

/*  A detached view of `n` sectors on the file. */
static tf_view_t *s_view (const char *path, const Techfeed__Sector *sectors, size_t n)
{
    tf_view_t *view = tf_view_new_detached (sectors, n, s_now);
    assert_non_null (view);
    tf_view_set_callback (view, s_on_view, NULL);
    s_saved[0] = 0;
    if (tf_view_set_store (view, path) != 0)
        fail_msg ("%s", tf_view_errstr (view));
    return view;
}

static void test_view_saves_and_resumes (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_view_t *view = s_view (f->path, NULL, 0);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_non_null (req);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT); // a new file
    //  A snapshot in two chunks: nothing in the file before its end mark
    const char *ids1[] = { "a", "b" }, *ids2[] = { "c" };
    const int sec1[] = { SPACE, AI }, sec2[] = { SPACE };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, ids1, sec1, 2, false, 0, 0, 0),
                      TF_VIEW_SYNC_MORE);
    assert_int_equal (s_status (f->path).record_count, 0);
    assert_string_equal (s_status (f->path).epoch, "");
    assert_int_equal (s_snapshot_chunk (view, EPOCH, ids2, sec2, 1, true, 5, 5, 3),
                      TF_VIEW_SYNC_DONE);
    tf_view_store_status_t st = s_status (f->path);
    assert_int_equal (st.record_count, 3);
    assert_int_equal (st.position, 5);
    assert_int_equal (st.last[SPACE], 5);
    assert_int_equal (st.last[AI], 3);
    assert_int_equal (st.digest, tf_view_digest (view));
    assert_string_equal (s_saved, "snapshot: 3 changes, position 5, 3 records|");

    //  Live: two events, one batch; nothing in the file until it ends
    s_event (view, 6, SPACE, 5, "d", 1, true);
    s_event (view, 7, AI, 3, "b", 1, false);
    assert_int_equal (tf_view_position (view), 7);
    assert_int_equal (s_status (f->path).position, 5);
    assert_int_equal (tf_view_flush (view), 0);
    st = s_status (f->path);
    assert_int_equal (st.position, 7);
    assert_int_equal (st.last[AI], 7);
    assert_int_equal (st.record_count, 3);
    assert_int_equal (st.digest, tf_view_digest (view));
    assert_non_null (strstr (s_saved, "|live: 2 changes, position 7, 3 records|"));
    uint64_t digest = tf_view_digest (view);
    tf_view_destroy (&view);

    //  A new view on the file: its records and position at once, then a
    //  catch-up since 7 (not a snapshot)
    view = s_view (f->path, NULL, 0);
    assert_int_equal (tf_view_count (view), 3);
    assert_non_null (tf_view_get (view, "d"));
    assert_null (tf_view_get (view, "b"));
    assert_int_equal (tf_view_digest (view), digest);
    assert_int_equal (tf_view_position (view), 7);
    assert_string_equal (tf_view_epoch (view), EPOCH);
    assert_int_equal (tf_view_last (view, AI), 7);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    req = tf_view_sync_begin (view, s_now);
    assert_non_null (req);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_CATCHUP);
    assert_int_equal (req->since_sequence, 7);
    assert_string_equal (req->epoch, EPOCH);
    tf_view_destroy (&view);
}

/*  The service's epoch changed: the snapshot replaces the file's records
    at its end mark only, in one batch. */
static void test_resync_replaces_at_end_mark (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_view_t *view = s_view (f->path, NULL, 0);
    tf_view_sync_begin (view, s_now);
    const char *ids[] = { "a", "b" };
    const int sectors[] = { SPACE, AI };
    s_snapshot_chunk (view, EPOCH, ids, sectors, 2, true, 5, 5, 3);
    tf_view_destroy (&view);

    view = s_view (f->path, NULL, 0);
    tf_view_sync_begin (view, s_now);
    //  The catch-up is refused: another epoch
    Techfeed__SyncReply trimmed = TECHFEED__SYNC_REPLY__INIT;
    trimmed.has_code = 1;
    trimmed.code = TECHFEED__ERROR_CODE__TRIMMED;
    trimmed.epoch = (char *) EPOCH2;
    assert_int_equal (tf_view_sync_reply (view, &trimmed, s_now), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT);
    const char *ids1[] = { "b" }, *ids2[] = { "x" };
    const int sec1[] = { AI }, sec2[] = { RAIL };
    s_snapshot_chunk (view, EPOCH2, ids1, sec1, 1, false, 0, 0, 0);
    tf_view_store_status_t st = s_status (f->path);
    assert_string_equal (st.epoch, EPOCH); // the old state, whole
    assert_int_equal (st.record_count, 2);
    s_snapshot_chunk (view, EPOCH2, ids2, sec2, 1, true, 2, 0, 1);
    st = s_status (f->path);
    assert_string_equal (st.epoch, EPOCH2);
    assert_int_equal (st.position, 2);
    assert_int_equal (st.record_count, 2); // b (same revision, kept) and x; a gone
    assert_int_equal (st.digest, tf_digest_item ("b", 1) + tf_digest_item ("x", 1));
    assert_int_equal (st.digest, tf_view_digest (view));
    tf_view_destroy (&view);
}

static void test_refuses_other_filter (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__Sector space_rail[] = { RAIL, SPACE };
    tf_view_t *view = s_view (f->path, space_rail, 2);
    tf_view_sync_begin (view, s_now);
    const char *ids[] = { "a" };
    const int sectors[] = { SPACE };
    s_snapshot_chunk (view, EPOCH, ids, sectors, 1, true, 5, 5, 0);
    tf_view_destroy (&view);
    assert_string_equal (s_status (f->path).sectors, "space,rail");

    //  All sectors on a file of two: refused, named
    view = tf_view_new_detached (NULL, 0, s_now);
    assert_int_equal (tf_view_set_store (view, f->path), -1);
    print_message ("%s\n", tf_view_errstr (view));
    assert_non_null (strstr (tf_view_errstr (view), "mirrors sectors 'space,rail', not 'all'"));
    tf_view_destroy (&view);

    //  A view not started yet: refused at start, before any socket
    view = tf_view_new (NULL, NULL);
    Techfeed__Sector space[] = { SPACE };
    assert_int_equal (tf_view_set_sectors (view, space, 1), 0);
    assert_int_equal (tf_view_set_store (view, f->path), 0);
    assert_int_equal (tf_view_start (view), -1);
    assert_null (tf_view_socket (view));
    assert_non_null (strstr (tf_view_errstr (view), "not 'space'"));
    tf_view_destroy (&view);

    //  The same two sectors, named in another order: the same filter
    view = s_view (f->path, (Techfeed__Sector[]){ SPACE, RAIL }, 2);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    tf_view_destroy (&view);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_batch_and_position_commit_together, setup, teardown),
        cmocka_unit_test_setup_teardown (test_kill_mid_batch, setup, teardown),
        cmocka_unit_test_setup_teardown (test_kill_during_batches, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuses_foreign_files, setup, teardown),
        cmocka_unit_test_setup_teardown (test_one_writer_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuses_read_only_file, setup, teardown),
        cmocka_unit_test_setup_teardown (test_view_saves_and_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_resync_replaces_at_end_mark, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuses_other_filter, setup, teardown),
    };
    return cmocka_run_group_tests_name ("persistent view", tests, NULL, NULL);
}
