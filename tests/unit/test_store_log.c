/*  Unit tests for storage/tf_store schema 2: the write path appends to the
    change log only, `records` follows it in batches (tf_store_apply), the
    revision and sector checks and the idempotency cache are in-memory
    indexes rebuilt at open and undone on rollback, and a schema-1 file is
    migrated. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tf_columns.h"
#include "tf_fixture.h"
#include "tf_sqlcheck.h"
#include "tf_store.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define T0 1700000000000LL /* a fixed "now" in Unix ms */
#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL

typedef struct {
    char *dir;      /* tf_test_tempdir, removed with all in it */
    char path[300]; /* dir/store.db */
    tf_store_t *store;
} fixture_t;

// --------------------------------------------------------------- helpers

/*  Opens the store of fx->path (creating or migrating the file). */
static void s_open (fixture_t *fx)
{
    char err[512];
    fx->store = tf_store_new (fx->path, err, sizeof err);
    if (!fx->store)
        fail_msg ("open %s: %s", fx->path, err);
}

static void s_reopen (fixture_t *fx)
{
    tf_store_destroy (&fx->store);
    s_open (fx);
}

/*  A store in a new temporary directory; teardown removes the directory. */
static int setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    fx->dir = tf_test_tempdir ();
    snprintf (fx->path, sizeof fx->path, "%s/store.db", fx->dir);
    s_open (fx);
    *state = fx;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *fx = *state;
    tf_store_destroy (&fx->store);
    tf_test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

/*  The shared fixture milestone as `id` in `sector`, its first tag `tag`. */
static Techfeed__Milestone *s_record (const char *id, int sector, const char *tag)
{
    Techfeed__Milestone *m = tf_fixture_milestone ();
    free (m->id);
    m->id = strdup (id);
    free (m->tags[0]);
    m->tags[0] = strdup (tag);
    assert_true (m->id && m->tags[0]);
    m->sector = (Techfeed__Sector) sector;
    return m;
}

/*  tf_store_put of s_record (id, sector, tag) at `now`; its return code. */
static int s_try_put (tf_store_t *store, const char *id, int sector, const char *tag,
                      bool has_expected, uint64_t expected, int64_t now, tf_change_t *change)
{
    Techfeed__Milestone *m = s_record (id, sector, tag);
    int rc = tf_store_put (store, m, has_expected, expected, now, change);
    techfeed__milestone__free_unpacked (m, NULL);
    return rc;
}

/*  The in-memory index holds `id` at `revision` in `sector`: a put
    expecting another revision, or a put to another sector, is refused. */
static void s_assert_indexed (tf_store_t *store, const char *id, uint64_t revision, int sector)
{
    tf_change_t change;
    uint64_t wrong[] = { revision - 1, revision + 1 };
    for (int i = 0; i < 2; i++) {
        assert_int_equal (s_try_put (store, id, sector, "z", true, wrong[i], T0, &change),
                          TF_STORE_CONFLICT);
        assert_int_equal (change.current_revision, revision);
    }
    int other = sector == SPACE ? RAIL : SPACE;
    assert_int_equal (s_try_put (store, id, other, "z", false, 0, T0, &change), TF_STORE_IMMUTABLE);
}

/*  A put that must succeed (no expected revision); its change. */
static tf_change_t s_put (tf_store_t *store, const char *id, int sector, const char *tag,
                          int64_t now)
{
    tf_change_t change;
    int rc = s_try_put (store, id, sector, tag, false, 0, now, &change);
    if (rc)
        fail_msg ("put %s: %d %s", id, rc, tf_store_errstr (store));
    return change;
}

/*  Revision tf_store_get returns, 0 for TF_STORE_NOT_FOUND; *tag (if not
    NULL) gets the first tag. */
static uint64_t s_revision (tf_store_t *store, const char *id, char *tag, size_t tagsize)
{
    Techfeed__Milestone *m = NULL;
    int rc = tf_store_get (store, id, &m);
    if (rc == TF_STORE_NOT_FOUND)
        return 0;
    if (rc)
        fail_msg ("get %s: %d %s", id, rc, tf_store_errstr (store));
    uint64_t revision = m->revision;
    if (tag)
        snprintf (tag, tagsize, "%s", m->n_tags ? m->tags[0] : "");
    techfeed__milestone__free_unpacked (m, NULL);
    return revision;
}

/*  tf_store_get finds `id` at `revision` with first tag `tag`. */
static void s_assert_get (tf_store_t *store, const char *id, uint64_t revision, const char *tag)
{
    char got[64];
    assert_int_equal (s_revision (store, id, got, sizeof got), revision);
    assert_string_equal (got, tag);
}

static tf_store_state_t s_state (tf_store_t *store)
{
    tf_store_state_t state;
    assert_int_equal (tf_store_state (store, &state), 0);
    return state;
}

/*  One integer from the file through a read-only connection of its own
    (what a plain-SQL reader sees); the query is a printf format. */
static int64_t s_sql (const char *path, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    int64_t value = 0;
    if (tf_sql_int (path, sql, &value))
        fail_msg ("%s: query failed", sql);
    return value;
}

/*  Changes the file through a connection of its own. */
static void s_sql_exec (const char *path, const char *sql)
{
    char why[256];
    if (tf_sql_exec (path, sql, why, sizeof why))
        fail_msg ("%s: %s", sql, why);
}

/*  tf_digest_item summed over the `records` table of the file. */
static uint64_t s_records_digest (const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT id, revision FROM records", -1, &stmt, NULL),
                      SQLITE_OK);
    uint64_t digest = 0;
    while (sqlite3_step (stmt) == SQLITE_ROW)
        digest += tf_digest_item ((const char *) sqlite3_column_text (stmt, 0),
                                  tf_columns_u64 (sqlite3_column_int64 (stmt, 1)));
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return digest;
}

/*  `records` matches the committed state: fully applied, same count and
    digest. */
static void s_assert_caught_up (fixture_t *fx)
{
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (tf_store_unapplied (fx->store), 0);
    assert_int_equal (s_sql (fx->path, "SELECT applied FROM state"), st.head_sequence);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), st.record_count);
    assert_true (s_records_digest (fx->path) == st.digest);
}

/*  The change log has no gap: sequences 1..head, or from its oldest. */
static void s_assert_no_gap (fixture_t *fx)
{
    assert_int_equal (s_sql (fx->path, "SELECT count(*) = coalesce (max(seq) - min(seq) + 1, 0)"
                                       " FROM changes"),
                      1);
    assert_int_equal (s_sql (fx->path, "SELECT coalesce (max(seq), 0) FROM changes"),
                      s_state (fx->store).head_sequence);
}

/*  Replies in the idempotency cache's rows. */
#define S_CACHED "SELECT coalesce (sum(count), 0) FROM reply_groups"

static void s_request_put (tf_store_t *store, const char *id, const char *reply, int64_t now)
{
    assert_int_equal (
        tf_store_request_put (store, id, (const uint8_t *) reply, strlen (reply), now), 0);
}

/*  The cached reply of `id` is the text `want` ("": not cached). */
static void s_assert_reply (tf_store_t *store, const char *id, const char *want)
{
    uint8_t *reply = NULL;
    size_t n = 0;
    int rc = tf_store_request_get (store, id, &reply, &n);
    if (rc != 0 && rc != TF_STORE_NOT_FOUND)
        fail_msg ("request_get %s: %d %s", id, rc, tf_store_errstr (store));
    assert_int_equal (rc, *want ? 0 : TF_STORE_NOT_FOUND);
    assert_int_equal (n, strlen (want));
    assert_memory_equal (reply ? (const char *) reply : "", want, n);
    free (reply);
}

// --------------------------------------------------------------- tests

static void test_records_lag_and_catch_up (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "a", SPACE, "one", T0 + 1);
    s_put (fx->store, "b", SPACE, "bee", T0 + 2);
    s_put (fx->store, "a", SPACE, "two", T0 + 3);
    //  Inside the transaction: its own changes, apply refused
    s_assert_get (fx->store, "a", 2, "two");
    assert_int_equal (tf_store_apply (fx->store, 0), TF_STORE_ERROR);
    s_put (fx->store, "c", RAIL, "sea", T0 + 4);
    s_put (fx->store, "a", SPACE, "three", T0 + 5);
    assert_int_equal (tf_store_unapplied (fx->store), 0); // nothing committed yet
    assert_int_equal (tf_store_commit (fx->store), 0);

    assert_int_equal (tf_store_unapplied (fx->store), 5);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), 0);
    //  The commits wrote the log only: state is as of `applied`
    assert_int_equal (s_sql (fx->path, "SELECT applied FROM state"), 0);
    assert_int_equal (s_sql (fx->path, "SELECT record_count FROM state"), 0);
    assert_int_equal (s_sql (fx->path, "SELECT max(seq) FROM changes"), 5);
    s_assert_get (fx->store, "a", 3, "three");
    s_assert_get (fx->store, "b", 1, "bee");
    assert_int_equal (s_revision (fx->store, "c", NULL, 0), 1);

    //  A committed, unapplied delete hides the record from get
    assert_int_equal (tf_store_delete (fx->store, "c", true, 1, T0 + 6, NULL), 0);
    assert_int_equal (tf_store_unapplied (fx->store), 6);
    assert_int_equal (s_revision (fx->store, "c", NULL, 0), 0);
    assert_int_equal (s_state (fx->store).record_count, 2);

    //  A partial batch: changes 1 and 2 only (a at revision 1, b)
    assert_int_equal (tf_store_apply (fx->store, 2), 0);
    assert_int_equal (tf_store_unapplied (fx->store), 4);
    assert_int_equal (s_sql (fx->path, "SELECT applied FROM state"), 2);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), 2);
    assert_int_equal (s_sql (fx->path, "SELECT revision FROM records WHERE id = 'a'"), 1);
    //  get still prefers the newer tail over records
    s_assert_get (fx->store, "a", 3, "three");

    //  The rest: each id's latest change, the JSON columns included
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), 2);
    assert_int_equal (s_sql (fx->path,
                             "SELECT count(*) FROM records WHERE id = 'a'"
                             " AND revision = 3 AND updated_ms = %lld"
                             " AND json_extract (tags, '$[0]') = 'three'"
                             " AND json_array_length (tags) = 2"
                             " AND json_extract (organizations, '$[1]') = 'CAST'"
                             " AND json_extract (metrics, '$[0].unit') = 'kg'",
                             T0 + 5),
                      1);
    assert_int_equal (s_sql (fx->path, "SELECT revision FROM records WHERE id = 'b'"), 1);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records WHERE id = 'c'"), 0);
    assert_int_equal (tf_store_apply (fx->store, 0), 0); // nothing left: no-op
    assert_int_equal (s_sql (fx->path, "SELECT applied FROM state"), 6);

    //  A delete of an applied record: records still has it, get does not
    assert_int_equal (tf_store_delete (fx->store, "b", false, 0, T0 + 7, NULL), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records WHERE id = 'b'"), 1);
    assert_int_equal (s_revision (fx->store, "b", NULL, 0), 0);
    //  ... and a put after it, in the same unapplied tail
    s_put (fx->store, "b", SPACE, "again", T0 + 8);
    s_assert_get (fx->store, "b", 1, "again");
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records WHERE id = 'b' AND"
                                       " revision = 1 AND json_extract (tags, '$[0]') = 'again'"),
                      1);

    //  Deleted and put again in another sector, then updated, in one
    //  batch: the row takes the new sector (its update otherwise leaves
    //  the sector column alone)
    s_put (fx->store, "a", SPACE, "four", T0 + 9); // an update of an applied row: same sector
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (s_sql (fx->path, "SELECT revision FROM records WHERE id = 'a'"), 4);
    assert_int_equal (tf_store_delete (fx->store, "a", false, 0, T0 + 10, NULL), 0);
    s_put (fx->store, "a", RAIL, "moved", T0 + 11);
    s_put (fx->store, "a", RAIL, "moved again", T0 + 12);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    assert_int_equal (s_sql (fx->path,
                             "SELECT count(*) FROM records WHERE id = 'a' AND sector = %d"
                             " AND revision = 2",
                             RAIL),
                      1);
    assert_int_equal (s_sql (fx->path,
                             "SELECT count(*) FROM records INDEXED BY records_sector"
                             " WHERE sector = %d AND id = 'a'",
                             SPACE),
                      0);
}

/*  Ids of a snapshot cursor run to its end, then destroyed; revisions as
    decimal digits into *revisions (may be NULL). Returns its sequence. */
static uint64_t s_snapshot (tf_store_cursor_t *cursor, char *ids, size_t size, uint64_t *revisions)
{
    assert_non_null (cursor);
    uint64_t sequence = tf_store_cursor_sequence (cursor);
    uint64_t digits = 0;
    ids[0] = 0;
    Techfeed__Milestone *m;
    int rc;
    while ((rc = tf_store_cursor_next_record (cursor, &m)) == 1) {
        snprintf (ids + strlen (ids), size - strlen (ids), "%s%s", ids[0] ? "," : "", m->id);
        digits = digits * 10 + m->revision;
        techfeed__milestone__free_unpacked (m, NULL);
    }
    assert_int_equal (rc, 0);
    tf_store_cursor_destroy (&cursor);
    if (revisions)
        *revisions = digits;
    return sequence;
}

/*  A put with the fields the snapshot filters look at. */
static void s_put_fields (tf_store_t *store, const char *id, int sector, const char *date,
                          const char *country, const char *org)
{
    Techfeed__Milestone *m = s_record (id, sector, "x");
    free (m->date);
    free (m->country);
    free (m->organizations[0]);
    m->date = strdup (date);
    m->country = strdup (country);
    m->organizations[0] = strdup (org);
    assert_true (m->date && m->country && m->organizations[0]);
    assert_int_equal (tf_store_put (store, m, false, 0, T0, NULL), 0);
    techfeed__milestone__free_unpacked (m, NULL);
}

#define S_FILTERS 7

/*  Snapshots through a few filters: ids and revisions into out[i], the
    sequence of each into seq[i]. */
static void s_filtered_snapshots (tf_store_t *store, char out[S_FILTERS][96],
                                  uint64_t seq[S_FILTERS])
{
    Techfeed__Sector space[] = { SPACE }, rail[] = { RAIL };
    Techfeed__Filter f[S_FILTERS];
    for (int i = 0; i < S_FILTERS; i++)
        techfeed__filter__init (&f[i]);
    f[1].n_sectors = 1;
    f[1].sectors = space;
    f[2].organization = "CNSA";
    f[3].country = "CN";
    f[4].date_from = "2019";
    f[5].date_to = "2019"; // prefix-inclusive: 2019-01-03 is in
    f[6].n_sectors = 1;
    f[6].sectors = rail;
    f[6].date_to = "2010-12";
    for (int i = 0; i < S_FILTERS; i++) {
        char ids[64];
        uint64_t revisions;
        seq[i] = s_snapshot (tf_store_snapshot_open (store, i ? &f[i] : NULL), ids, sizeof ids,
                             &revisions);
        snprintf (out[i], sizeof out[i], "%s/%llu", ids, (unsigned long long) revisions);
    }
}

/*  Snapshots merge the unapplied tail of the log and apply nothing: the
    same records, filters included, before and after the applier's work. */
static void test_snapshot_merges_tail (void **state)
{
    fixture_t *fx = *state;
    s_put_fields (fx->store, "a", SPACE, "2019-01-03", "CN", "CNSA");
    s_put_fields (fx->store, "b", RAIL, "2008-08-01", "CN", "CR");
    s_put_fields (fx->store, "c", SPACE, "2019", "CN", "CNSA");
    s_put_fields (fx->store, "b", RAIL, "2008-08", "CN", "CR");
    assert_int_equal (tf_store_delete (fx->store, "c", false, 0, T0, NULL), 0);
    s_put_fields (fx->store, "d", SPACE, "2021-04-29", "CN", "CNSA");
    assert_int_equal (tf_store_unapplied (fx->store), 6);

    char ids[64];
    uint64_t revisions;
    tf_store_cursor_t *cursor = tf_store_snapshot_open (fx->store, NULL);
    assert_non_null (cursor);
    assert_int_equal (tf_store_cursor_sequence (cursor), s_state (fx->store).head_sequence);
    assert_int_equal (tf_store_cursor_sector_heads (cursor)[SPACE], 6);
    assert_int_equal (tf_store_cursor_sector_heads (cursor)[RAIL], 4);
    assert_int_equal (s_snapshot (cursor, ids, sizeof ids, &revisions), 6);
    assert_string_equal (ids, "a,b,d");
    assert_int_equal (revisions, 121);
    assert_int_equal (tf_store_unapplied (fx->store), 6); // merged, not applied
    char at_6[S_FILTERS][96], inside[S_FILTERS][96], at_10[S_FILTERS][96];
    char tail_6[S_FILTERS][96], tail_10[S_FILTERS][96];
    uint64_t seq_6[S_FILTERS], seq_inside[S_FILTERS], seq_10[S_FILTERS], seq_tail[S_FILTERS];
    s_filtered_snapshots (fx->store, tail_6, seq_tail);
    assert_int_equal (tf_store_apply (fx->store, 0), 0); // the applier's part
    s_assert_caught_up (fx);
    s_filtered_snapshots (fx->store, at_6, seq_6);
    for (int i = 0; i < S_FILTERS; i++)
        assert_string_equal (tail_6[i], at_6[i]);
    assert_string_equal (at_6[1], "a,d/11");
    assert_string_equal (at_6[5], "a,b/12");

    //  Committed, not applied: records move in and out of the filters
    s_put_fields (fx->store, "e", SPACE, "2020", "US", "NASA");                 // 7
    assert_int_equal (tf_store_delete (fx->store, "a", false, 0, T0, NULL), 0); // 8
    s_put_fields (fx->store, "f", RAIL, "2017-06", "CN", "CR");                 // 9
    s_put_fields (fx->store, "d", SPACE, "2018", "CN", "CNSA");                 // 10
    //  Inside a transaction the log cannot be applied first: the snapshot
    //  merges the unapplied tail (committed only), as of the head still
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put_fields (fx->store, "g", SPACE, "2019", "CN", "CNSA");
    s_filtered_snapshots (fx->store, inside, seq_inside);
    cursor = tf_store_snapshot_open (fx->store, NULL);
    assert_non_null (cursor);
    assert_int_equal (tf_store_cursor_sector_heads (cursor)[SPACE], 10);
    assert_int_equal (tf_store_cursor_sector_heads (cursor)[RAIL], 9);
    assert_int_equal (s_snapshot (cursor, ids, sizeof ids, &revisions), 10);
    assert_string_equal (ids, "b,d,e,f");
    assert_int_equal (revisions, 2211);
    assert_int_equal (tf_store_rollback (fx->store), 0);
    assert_int_equal (tf_store_unapplied (fx->store), 4);

    s_filtered_snapshots (fx->store, tail_10, seq_tail);
    assert_int_equal (tf_store_unapplied (fx->store), 4);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    s_filtered_snapshots (fx->store, at_10, seq_10);
    assert_string_equal (at_10[0], "b,d,e,f/2211");
    assert_string_equal (at_10[2], "d/2");
    assert_string_equal (at_10[4], "e/1");
    assert_string_equal (at_10[5], "b,d,f/221");
    assert_string_equal (at_10[6], "b/2");
    for (int i = 0; i < S_FILTERS; i++) {
        assert_int_equal (seq_6[i], 6);
        assert_int_equal (seq_10[i], 10);
        assert_int_equal (seq_inside[i], 10);
        assert_string_equal (inside[i], at_10[i]);
        assert_string_equal (tail_10[i], at_10[i]);
    }
}

static void test_reopen_with_unapplied_tail (void **state)
{
    fixture_t *fx = *state;
    //  In records: a (1), c (1), e (1)
    s_put (fx->store, "a", SPACE, "x", T0);
    s_put (fx->store, "c", SPACE, "x", T0);
    s_put (fx->store, "e", RAIL, "x", T0);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    //  Only in the log: a -> 2, b (1), c deleted, d put and deleted,
    //  e deleted and put again in another sector
    s_put (fx->store, "a", SPACE, "y", T0 + 1);
    s_put (fx->store, "b", RAIL, "x", T0 + 1);
    assert_int_equal (tf_store_delete (fx->store, "c", false, 0, T0 + 1, NULL), 0);
    s_put (fx->store, "d", SPACE, "x", T0 + 1);
    assert_int_equal (tf_store_delete (fx->store, "d", false, 0, T0 + 1, NULL), 0);
    assert_int_equal (tf_store_delete (fx->store, "e", false, 0, T0 + 1, NULL), 0);
    s_put (fx->store, "e", SPACE, "x", T0 + 1);
    tf_store_state_t before = s_state (fx->store);
    assert_int_equal (before.head_sequence, 10);
    assert_int_equal (tf_store_unapplied (fx->store), 7);

    s_reopen (fx);
    assert_int_equal (tf_store_unapplied (fx->store), 7);
    tf_store_state_t after = s_state (fx->store);
    assert_int_equal (after.head_sequence, 10);
    assert_int_equal (after.record_count, 3); // a, b, e
    assert_true (after.digest == before.digest);

    s_assert_indexed (fx->store, "a", 2, SPACE);
    s_assert_indexed (fx->store, "b", 1, RAIL);
    s_assert_indexed (fx->store, "e", 1, SPACE);
    assert_int_equal (tf_store_delete (fx->store, "c", false, 0, T0 + 2, NULL), TF_STORE_NOT_FOUND);
    assert_int_equal (tf_store_delete (fx->store, "d", false, 0, T0 + 2, NULL), TF_STORE_NOT_FOUND);
    assert_int_equal (s_revision (fx->store, "c", NULL, 0), 0);
    assert_int_equal (s_revision (fx->store, "e", NULL, 0), 1);

    //  Refusals took no sequence
    tf_change_t change;
    assert_int_equal (s_try_put (fx->store, "a", SPACE, "z", true, 2, T0 + 2, &change), 0);
    assert_int_equal (change.sequence, 11);
    assert_int_equal (change.revision, 3);
    assert_int_equal (s_try_put (fx->store, "c", SPACE, "z", true, 0, T0 + 2, &change), 0);
    assert_int_equal (change.sequence, 12);
    assert_int_equal (change.revision, 1);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    assert_int_equal (s_sql (fx->path, "SELECT sector FROM records WHERE id = 'e'"), SPACE);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records WHERE id = 'd'"), 0);
    s_assert_no_gap (fx);
}

/*  b and c committed at revision 1; returns the head. */
static uint64_t s_undo_setup (fixture_t *fx)
{
    s_put (fx->store, "b", SPACE, "x", T0);
    s_put (fx->store, "c", SPACE, "x", T0);
    return s_state (fx->store).head_sequence;
}

/*  Inside the open transaction: a new, b -> 2, c deleted, "r-x" cached. */
static void s_undo_changes (fixture_t *fx)
{
    s_put (fx->store, "a", SPACE, "x", T0 + 1);
    assert_int_equal (s_put (fx->store, "b", SPACE, "y", T0 + 1).revision, 2);
    assert_int_equal (tf_store_delete (fx->store, "c", true, 1, T0 + 1, NULL), 0);
    s_request_put (fx->store, "r-x", "reply-x", T0 + 1);
    s_assert_reply (fx->store, "r-x", "reply-x");
    assert_int_equal (s_revision (fx->store, "a", NULL, 0), 1);
    assert_int_equal (s_revision (fx->store, "c", NULL, 0), 0);
}

/*  None of s_undo_changes is left, in memory or in the file. */
static void s_assert_undone (fixture_t *fx, uint64_t head)
{
    assert_int_equal (s_revision (fx->store, "a", NULL, 0), 0);
    assert_int_equal (s_revision (fx->store, "b", NULL, 0), 1);
    assert_int_equal (s_revision (fx->store, "c", NULL, 0), 1);
    s_assert_reply (fx->store, "r-x", "");
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM reply_groups"
                                       " WHERE instr (replies, CAST ('r-x' AS BLOB))"),
                      0);
    //  The index agrees: c can be deleted, b expects revision 1
    s_assert_indexed (fx->store, "b", 1, SPACE);
    tf_change_t change;
    assert_int_equal (s_try_put (fx->store, "b", SPACE, "z", true, 1, T0 + 2, &change), 0);
    assert_int_equal (change.revision, 2);
    assert_int_equal (change.sequence, head + 1);
    assert_int_equal (s_try_put (fx->store, "a", SPACE, "z", true, 0, T0 + 2, &change), 0);
    assert_int_equal (change.revision, 1);
    assert_int_equal (tf_store_delete (fx->store, "c", true, 1, T0 + 2, NULL), 0);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    s_assert_no_gap (fx);
}

static void test_index_undo_rollback (void **state)
{
    fixture_t *fx = *state;
    uint64_t head = s_undo_setup (fx);
    tf_store_state_t before = s_state (fx->store);
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_undo_changes (fx);
    assert_int_equal (tf_store_rollback (fx->store), 0);
    tf_store_state_t after = s_state (fx->store);
    assert_int_equal (after.record_count, before.record_count);
    assert_true (after.digest == before.digest);
    assert_int_equal (after.head_sequence, head);
    assert_int_equal (tf_store_unapplied (fx->store), head);
    s_assert_undone (fx, head);
}

static void test_index_undo_savepoint (void **state)
{
    fixture_t *fx = *state;
    uint64_t head = s_undo_setup (fx);
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "kept", RAIL, "x", T0 + 1); // before the savepoint
    s_request_put (fx->store, "r-kept", "reply-kept", T0 + 1);
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_undo_changes (fx);
    //  A nested savepoint released into the outer one goes with it
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "nested", SPACE, "x", T0 + 1);
    s_request_put (fx->store, "r-kept", "overwritten", T0 + 1);
    assert_int_equal (tf_store_release (fx->store), 0);
    assert_int_equal (tf_store_rollback_to (fx->store), 0);
    assert_int_equal (tf_store_commit (fx->store), 0);

    assert_int_equal (s_revision (fx->store, "kept", NULL, 0), 1);
    assert_int_equal (s_revision (fx->store, "nested", NULL, 0), 0);
    s_assert_reply (fx->store, "r-kept", "reply-kept");
    assert_int_equal (s_state (fx->store).head_sequence, head + 1);
    s_assert_undone (fx, head + 1);

    //  What the file says agrees after a reopen
    s_reopen (fx);
    s_assert_reply (fx->store, "r-kept", "reply-kept");
    s_assert_reply (fx->store, "r-x", "");
    assert_int_equal (s_revision (fx->store, "nested", NULL, 0), 0);
    assert_int_equal (s_revision (fx->store, "b", NULL, 0), 2);
}

/*  A savepoint outside a transaction begins one: rolling back to it ends
    the transaction, releasing it commits. */
static void test_index_undo_outer_savepoint (void **state)
{
    fixture_t *fx = *state;
    uint64_t head = s_undo_setup (fx);
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_undo_changes (fx);
    assert_int_equal (tf_store_rollback_to (fx->store), 0);
    assert_int_equal (s_state (fx->store).head_sequence, head);
    s_assert_undone (fx, head);

    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "z", RAIL, "x", T0 + 3);
    s_request_put (fx->store, "r-z", "reply-z", T0 + 3);
    assert_int_equal (tf_store_release (fx->store), 0);
    assert_int_equal (tf_store_unapplied (fx->store), 1);
    s_reopen (fx);
    s_assert_reply (fx->store, "r-z", "reply-z");
    assert_int_equal (s_revision (fx->store, "z", NULL, 0), 1);
    assert_int_equal (s_try_put (fx->store, "z", RAIL, "y", true, 0, T0 + 4, NULL),
                      TF_STORE_CONFLICT);
}

static void test_sequences_no_gap (void **state)
{
    fixture_t *fx = *state;
    tf_change_t change;
    //  Group 1: three puts and a refusal
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "a", SPACE, "x", T0);
    assert_int_equal (s_try_put (fx->store, "z", SPACE, "x", true, 5, T0, &change),
                      TF_STORE_CONFLICT);
    s_put (fx->store, "b", RAIL, "x", T0);
    s_put (fx->store, "c", SPACE, "x", T0);
    assert_int_equal (tf_store_commit (fx->store), 0);
    //  Group 2: rolled back
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "d", SPACE, "x", T0);
    s_put (fx->store, "e", SPACE, "x", T0);
    assert_int_equal (tf_store_rollback (fx->store), 0);
    //  Group 3: an item rolled back to its savepoint
    assert_int_equal (tf_store_begin (fx->store), 0);
    assert_int_equal (s_put (fx->store, "f", SPACE, "x", T0).sequence, 4);
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "g", SPACE, "x", T0);
    assert_int_equal (tf_store_rollback_to (fx->store), 0);
    assert_int_equal (s_put (fx->store, "h", RAIL, "x", T0).sequence, 5);
    assert_int_equal (tf_store_commit (fx->store), 0);
    //  Group 4 moves the head but neither count nor digest
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "tmp", SPACE, "x", T0);
    assert_int_equal (tf_store_delete (fx->store, "tmp", false, 0, T0, &change), 0);
    assert_int_equal (change.sequence, 7);
    assert_int_equal (tf_store_commit (fx->store), 0);
    s_reopen (fx);
    assert_int_equal (s_state (fx->store).head_sequence, 7);
    //  Single items, one refused
    assert_int_equal (tf_store_delete (fx->store, "g", false, 0, T0, NULL), TF_STORE_NOT_FOUND);
    change = s_put (fx->store, "a", SPACE, "y", T0);
    assert_int_equal (change.sequence, 8);
    assert_int_equal (change.sector_prev_sequence, 7);
    s_assert_no_gap (fx);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), 1);

    //  The whole log trimmed (once applied); the head survives a reopen
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 1), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 0);
    s_assert_caught_up (fx);
    s_reopen (fx);
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.head_sequence, 8);
    assert_int_equal (st.log_first_sequence, 9);
    assert_int_equal (st.sector_heads[SPACE], 8);
    assert_int_equal (st.sector_heads[RAIL], 5);
    change = s_put (fx->store, "b", RAIL, "y", T0 + 5);
    assert_int_equal (change.sequence, 9);
    assert_int_equal (change.sector_prev_sequence, 5);
    assert_int_equal (change.revision, 2);
    //  Again, reopening twice with an empty log
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 10), 0);
    s_reopen (fx);
    s_reopen (fx);
    assert_int_equal (s_state (fx->store).head_sequence, 9);
    assert_int_equal (s_put (fx->store, "i", SPACE, "x", T0 + 20).sequence, 10);
    s_assert_no_gap (fx);
}

static void test_trim_keeps_unapplied (void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf (id, sizeof id, "m%d", i);
        s_put (fx->store, id, SPACE, "x", T0 + i);
    }
    s_put (fx->store, "m1", SPACE, "newest", T0 + 4);
    assert_int_equal (tf_store_delete (fx->store, "m2", false, 0, T0 + 5, NULL), 0);
    assert_int_equal (tf_store_unapplied (fx->store), 6);

    //  As --log-keep 1 does: nothing goes before the applier has it
    assert_int_equal (tf_store_trim (fx->store, 1, 0), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 6);
    assert_int_equal (tf_store_unapplied (fx->store), 6);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 1, 0), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 1);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), 6);
    assert_int_equal (s_sql (fx->path, "SELECT applied FROM state"), 6);
    s_assert_caught_up (fx);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), 3);
    assert_int_equal (s_sql (fx->path,
                             "SELECT count(*) FROM records WHERE id = 'm1'"
                             " AND revision = 2 AND json_extract (tags, '$[0]') = 'newest'"),
                      1);

    //  By age: every change is old, none of the unapplied ones is lost
    s_put (fx->store, "m3", SPACE, "later", T0 + 6);
    s_put (fx->store, "m4", RAIL, "x", T0 + 7);
    assert_int_equal (tf_store_unapplied (fx->store), 2);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 1000), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 2); // unapplied
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 1000), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 0);
    s_assert_caught_up (fx);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), 4);
    s_assert_get (fx->store, "m3", 2, "later");
    assert_int_equal (s_sql (fx->path, "SELECT revision FROM records WHERE id = 'm3'"), 2);
    s_reopen (fx);
    assert_int_equal (s_revision (fx->store, "m4", NULL, 0), 1);
    assert_int_equal (s_put (fx->store, "m4", RAIL, "y", T0 + 8).revision, 2);
}

/*  Trimming by age takes a prefix of the log, never a hole: ts_ms is
    wall-clock time and goes back when the clock steps back, so an old
    change after a newer one stays until everything before it is old
    too. In steps, the first change not old enough ends the prefix even
    past the first step. */
static void test_trim_by_age_keeps_a_prefix (void **state)
{
    fixture_t *fx = *state;
    //  seq 1..6; the clock steps back at 4 and at 6
    const int64_t ts[] = { T0 + 1000, T0 + 2000, T0 + 5000, T0 + 100, T0 + 6000, T0 + 200 };
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf (id, sizeof id, "c%d", i + 1);
        s_put (fx->store, id, SPACE, "x", ts[i]);
    }
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 3000), 0);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), 3);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 4);
    s_assert_no_gap (fx);
    assert_int_equal (s_state (fx->store).log_first_sequence, 3);
    //  A catch-up from 3 has 4, the old change after a newer one
    int rc = 0;
    tf_store_cursor_t *cursor = tf_store_changes_open (fx->store, 3, NULL, &rc);
    assert_non_null (cursor);
    Techfeed__ChangeEvent *event = NULL;
    assert_int_equal (tf_store_cursor_next_change (cursor, &event), 1);
    assert_int_equal (event->sequence, 4);
    techfeed__change_event__free_unpacked (event, NULL);
    tf_store_cursor_destroy (&cursor);
    //  Later: up to the next change not old enough (5), and with the count
    //  bound too, still a prefix
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 5500), 0);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), 5);
    s_assert_no_gap (fx);
    assert_int_equal (tf_store_trim (fx->store, 3, T0 + 5500), 0);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), 5);
    s_assert_no_gap (fx);

    //  A backlog of more than a step, old but for one change past it: a
    //  full step, then up to that change, then nothing
    const int young = 6 + TF_STORE_STEP_ROWS + 100, last = young + 100;
    assert_int_equal (tf_store_begin (fx->store), 0);
    for (int seq = 7; seq <= last; seq++) {
        snprintf (id, sizeof id, "b%d", seq);
        s_put (fx->store, id, SPACE, "x", seq == young ? T0 + 9000 : T0 + seq % 7);
    }
    assert_int_equal (tf_store_commit (fx->store), 0);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 8000), 1);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), 5 + TF_STORE_STEP_ROWS);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 8000), 0);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), young);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 8000), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), last - young + 1);
    s_assert_no_gap (fx);
    s_assert_caught_up (fx);
}

/*  A change whose stored body no longer decodes stops the batch, naming
    the change; nothing of the batch is applied, and once the body is
    whole again the same batch goes through. */
static void test_apply_undecodable_body (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "a", SPACE, "one", T0 + 1);
    uint64_t bad = s_put (fx->store, "b", SPACE, "bee", T0 + 2).sequence;
    s_sql_exec (fx->path, "CREATE TABLE kept AS SELECT seq, body FROM changes;"
                          "UPDATE changes SET body = x'0aff' WHERE id = 'b'");
    assert_int_equal (tf_store_apply (fx->store, 0), TF_STORE_ERROR);
    char want[64];
    snprintf (want, sizeof want, "change %llu (b): stored body does not decode",
              (unsigned long long) bad);
    if (!strstr (tf_store_errstr (fx->store), want))
        fail_msg ("unclear error: %s", tf_store_errstr (fx->store));
    assert_int_equal (tf_store_unapplied (fx->store), 2);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM records"), 0);
    s_sql_exec (fx->path, "UPDATE changes SET body = (SELECT body FROM kept"
                          " WHERE kept.seq = changes.seq); DROP TABLE kept");
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    s_assert_get (fx->store, "b", 1, "bee");
}

/*  The records table cannot follow (the file may not grow): the log is
    still served, snapshots included, and nothing is trimmed. */
static void test_apply_on_full_disk (void **state)
{
    fixture_t *fx = *state;
    Techfeed__Milestone *m = s_record ("big", SPACE, "x");
    free (m->summary);
    m->summary = calloc (1, 2001);
    assert_non_null (m->summary);
    memset (m->summary, 's', 2000);
    char id[32];
    assert_int_equal (tf_store_begin (fx->store), 0);
    for (int i = 0; i < 100; i++) {
        snprintf (id, sizeof id, "big-%03d", i);
        free (m->id);
        m->id = strdup (id);
        assert_int_equal (tf_store_put (fx->store, m, false, 0, T0, NULL), 0);
    }
    techfeed__milestone__free_unpacked (m, NULL);
    assert_int_equal (tf_store_commit (fx->store), 0);
    assert_int_equal (tf_store_delete (fx->store, "big-007", false, 0, T0, NULL), 0);

    char wal[320];
    snprintf (wal, sizeof wal, "%s-wal", fx->path);
    long long size = tf_test_file_size (wal);
    assert_true (size > 0);
    tf_test_fsize_t fsize;
    if (!tf_test_fsize_limit (&fsize, (long) size + 8192))
        skip ();
    int applied = tf_store_apply (fx->store, 0);
    int trimmed = tf_store_trim (fx->store, 1, 0);
    char ids[1024];
    uint64_t sequence =
        s_snapshot (tf_store_snapshot_open (fx->store, NULL), ids, sizeof ids, NULL);
    tf_test_fsize_restore (&fsize);

    assert_int_equal (applied, TF_STORE_FULL);
    assert_int_equal (trimmed, 0); // nothing applied, nothing to delete
    assert_int_equal (tf_store_unapplied (fx->store), 101);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 101);
    assert_int_equal (s_sql (fx->path, "SELECT applied FROM state"), 0);
    assert_int_equal (sequence, 101);
    assert_int_equal (strlen (ids), 99 * 8 - 1); // "big-000,...": all but big-007
    assert_null (strstr (ids, "big-007"));
    assert_non_null (strstr (ids, "big-099"));
    assert_int_equal (s_revision (fx->store, "big-099", NULL, 0), 1);

    //  Space again: it catches up
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_assert_caught_up (fx);
    assert_int_equal (s_put (fx->store, "after", SPACE, "x", T0).sequence, 102);
}

static void test_request_cache (void **state)
{
    fixture_t *fx = *state;
    char id[16], want[32];
    for (int i = 1; i <= 5; i++) {
        snprintf (id, sizeof id, "r%d", i);
        snprintf (want, sizeof want, "reply-%d", i);
        s_request_put (fx->store, id, want, T0 + i);
    }
    //  By count: the newest two stay
    assert_int_equal (tf_store_request_expire (fx->store, 0, 2), 0);
    for (int i = 1; i <= 5; i++) {
        snprintf (id, sizeof id, "r%d", i);
        snprintf (want, sizeof want, "reply-%d", i);
        s_assert_reply (fx->store, id, i > 3 ? want : "");
    }
    assert_int_equal (s_sql (fx->path, S_CACHED), 2);

    s_reopen (fx);
    s_assert_reply (fx->store, "r3", "");
    s_assert_reply (fx->store, "r4", "reply-4");
    s_assert_reply (fx->store, "r5", "reply-5");

    //  One id twice: the newest reply wins, in memory and after a reopen
    s_request_put (fx->store, "dup", "old", T0 + 10);
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_request_put (fx->store, "dup", "new", T0 + 20);
    assert_int_equal (tf_store_commit (fx->store), 0);
    s_assert_reply (fx->store, "dup", "new");
    s_reopen (fx);
    s_assert_reply (fx->store, "dup", "new");
    //  Expiring the older row of "dup" (and r4, r5) keeps the newer one
    assert_int_equal (tf_store_request_expire (fx->store, T0 + 15, 0), 0);
    s_assert_reply (fx->store, "dup", "new");
    s_assert_reply (fx->store, "r5", "");
    assert_int_equal (s_sql (fx->path, S_CACHED), 1);
    s_reopen (fx);
    s_assert_reply (fx->store, "dup", "new");

    //  Count bound after a reopen: rows go on from the newest one
    s_request_put (fx->store, "r6", "reply-6", T0 + 30);
    s_request_put (fx->store, "r7", "reply-7", T0 + 31);
    assert_int_equal (tf_store_request_expire (fx->store, 0, 1), 0);
    s_assert_reply (fx->store, "dup", "");
    s_assert_reply (fx->store, "r6", "");
    s_assert_reply (fx->store, "r7", "reply-7");

    //  Not inside a transaction
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_request_put (fx->store, "r8", "reply-8", T0 + 40);
    assert_int_equal (tf_store_request_expire (fx->store, T0 + 100, 0), TF_STORE_ERROR);
    assert_int_equal (tf_store_commit (fx->store), 0);
    s_assert_reply (fx->store, "r7", "reply-7");
    s_assert_reply (fx->store, "r8", "reply-8");
}

/*  A write transaction's replies are one row, read back from memory
    before it commits and from the row after; the row expires whole, when
    its newest reply is due by age or by count. */
static void test_reply_groups (void **state)
{
    fixture_t *fx = *state;
    s_request_put (fx->store, "alone", "reply-0", T0); // outside: a row of one
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_request_put (fx->store, "g1", "reply-1", T0 + 1);
    s_request_put (fx->store, "g2", "reply-2", T0 + 2);
    s_request_put (fx->store, "g3", "reply-3", T0 + 3);
    s_request_put (fx->store, "g1", "reply-1b", T0 + 3); // the later one counts
    //  A retry within the same transaction finds them before COMMIT
    s_assert_reply (fx->store, "g1", "reply-1b");
    s_assert_reply (fx->store, "g2", "reply-2");
    s_assert_reply (fx->store, "g3", "reply-3");
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM reply_groups"), 1);
    assert_int_equal (tf_store_commit (fx->store), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM reply_groups"), 2);
    assert_int_equal (s_sql (fx->path, "SELECT count FROM reply_groups WHERE n = 2"), 4);
    assert_int_equal (
        s_sql (fx->path, "SELECT created_ms - %lld FROM reply_groups WHERE n = 2", T0), 3);
    s_assert_reply (fx->store, "g1", "reply-1b");
    s_assert_reply (fx->store, "g3", "reply-3");
    s_reopen (fx);
    s_assert_reply (fx->store, "alone", "reply-0");
    s_assert_reply (fx->store, "g1", "reply-1b");
    s_assert_reply (fx->store, "g3", "reply-3");

    //  By age: the group's oldest reply is due, its newest is not
    assert_int_equal (tf_store_request_expire (fx->store, T0 + 2, 0), 0);
    s_assert_reply (fx->store, "alone", "");
    s_assert_reply (fx->store, "g1", "reply-1b");
    //  By count: keeping the newest 2 replies keeps the group whole (its
    //  newest, number 5, is one of them), its older 2, 3 and 4 too
    s_request_put (fx->store, "last", "reply-6", T0 + 9);
    assert_int_equal (tf_store_request_expire (fx->store, 0, 2), 0);
    s_assert_reply (fx->store, "g2", "reply-2");
    s_assert_reply (fx->store, "g1", "reply-1b");
    //  Keeping the newest 1, it goes
    assert_int_equal (tf_store_request_expire (fx->store, 0, 1), 0);
    s_assert_reply (fx->store, "g1", "");
    s_assert_reply (fx->store, "g2", "");
    s_assert_reply (fx->store, "last", "reply-6");
    assert_int_equal (s_sql (fx->path, S_CACHED), 1);
    s_reopen (fx);
    s_assert_reply (fx->store, "g3", "");
    s_assert_reply (fx->store, "last", "reply-6");
}

/*  Replies of bulk requests can be large: a group past the buffer the
    store keeps between groups is written and read back whole, and the
    next group starts afresh. */
static void test_reply_group_large (void **state)
{
    fixture_t *fx = *state;
    const size_t size = 700 * 1024;
    uint8_t *big = malloc (size);
    assert_non_null (big);
    for (size_t i = 0; i < size; i++)
        big[i] = (uint8_t) (i * 131 + 7);
    assert_int_equal (tf_store_begin (fx->store), 0);
    assert_int_equal (tf_store_request_put (fx->store, "big-1", big, size, T0), 0);
    assert_int_equal (tf_store_request_put (fx->store, "big-2", big + 1, size - 1, T0), 0);
    assert_int_equal (tf_store_commit (fx->store), 0);
    s_request_put (fx->store, "small", "reply-s", T0 + 1);
    for (int pass = 0; pass < 2; pass++) { // as written, and after a reopen
        uint8_t *reply = NULL;
        size_t n = 0;
        assert_int_equal (tf_store_request_get (fx->store, "big-2", &reply, &n), 0);
        assert_int_equal (n, size - 1);
        assert_memory_equal (reply, big + 1, n);
        free (reply);
        s_assert_reply (fx->store, "small", "reply-s");
        s_reopen (fx);
    }
    assert_int_equal (s_sql (fx->path, S_CACHED), 3);
    free (big);
}

/*  The store will not open when a reply_groups row's entries do not add
    up: the error names the file, the row and where its bytes went wrong. */
static void test_reply_group_damaged (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_request_put (fx->store, "d1", "reply-1", T0);
    s_request_put (fx->store, "d2", "reply-2", T0);
    assert_int_equal (tf_store_commit (fx->store), 0);
    //  Damaged under a running store: the get says so, nothing is made up
    s_sql_exec (fx->path, "UPDATE reply_groups SET replies = substr (replies, 1, 20)");
    uint8_t *reply = NULL;
    size_t size = 0;
    assert_int_equal (tf_store_request_get (fx->store, "d2", &reply, &size), TF_STORE_ERROR);
    assert_null (reply);
    if (!strstr (tf_store_errstr (fx->store),
                 "request d2: reply group 1 has no such entry at byte 17"))
        fail_msg ("unclear error: %s", tf_store_errstr (fx->store));
    s_sql_exec (fx->path,
                "UPDATE reply_groups SET replies = CAST ("
                " x'00000002' || CAST ('d1' AS BLOB) || x'00000007' || CAST ('reply-1' AS BLOB) ||"
                " x'00000002' || CAST ('d2' AS BLOB) || x'00000007' || CAST ('reply-2' AS BLOB)"
                " AS BLOB)");
    s_assert_reply (fx->store, "d2", "reply-2");
    tf_store_destroy (&fx->store);
    char err[512] = "";
    //  A count that says 3 for the 2 entries there are
    s_sql_exec (fx->path, "UPDATE reply_groups SET count = 3");
    assert_null (tf_store_new (fx->path, err, sizeof err));
    if (!strstr (err, fx->path) ||
        !strstr (err, "reply_groups row 1 is damaged: 2 of its 3 entries"))
        fail_msg ("unclear error: %s", err);
    //  The last byte cut off: the second entry, from byte 17 (after the
    //  first's 4 + 2 + 4 + 7 bytes), no longer fits in the 33 left
    s_sql_exec (fx->path, "UPDATE reply_groups SET count = 2,"
                          " replies = substr (replies, 1, length (replies) - 1)");
    assert_null (tf_store_new (fx->path, err, sizeof err));
    if (!strstr (err,
                 "reply_groups row 1 is damaged: 1 of its 2 entries readable, up to byte 17 of 33"))
        fail_msg ("unclear error: %s", err);
}

/*  Housekeeping in steps: a backlog of expired replies and of changes to
    trim goes TF_STORE_STEP_ROWS replies or changes per call, oldest first,
    each call saying whether more is due; what is not due stays. */
static void test_housekeeping_in_steps (void **state)
{
    fixture_t *fx = *state;
    const int backlog = TF_STORE_STEP_ROWS + TF_STORE_STEP_ROWS / 2; // due: 1.5 steps
    char id[16];
    //  Replies in write transactions of 10 (a row each), reply i at T0 + i
    for (int i = 0; i < backlog + 10; i += 10) {
        assert_int_equal (tf_store_begin (fx->store), 0);
        for (int j = i; j < i + 10; j++) {
            snprintf (id, sizeof id, "h%d", j);
            s_request_put (fx->store, id, "r", T0 + j);
        }
        assert_int_equal (tf_store_commit (fx->store), 0);
    }
    assert_int_equal (tf_store_begin (fx->store), 0);
    for (int i = 0; i < backlog + 10; i++) {
        snprintf (id, sizeof id, "h%d", i);
        s_put (fx->store, id, SPACE, "x", T0 + i);
    }
    assert_int_equal (tf_store_commit (fx->store), 0);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);

    //  Replies older than T0 + backlog: a full step, then the rest
    assert_int_equal (tf_store_request_expire (fx->store, T0 + backlog, 0), 1);
    assert_int_equal (s_sql (fx->path, S_CACHED), backlog + 10 - TF_STORE_STEP_ROWS);
    assert_int_equal (s_sql (fx->path, "SELECT min(n) FROM reply_groups"), TF_STORE_STEP_ROWS + 1);
    s_assert_reply (fx->store, "h0", "");
    s_assert_reply (fx->store, "h2000", "r");
    assert_int_equal (tf_store_request_expire (fx->store, T0 + backlog, 0), 0);
    assert_int_equal (s_sql (fx->path, S_CACHED), 10);
    s_assert_reply (fx->store, "h2999", "");
    s_assert_reply (fx->store, "h3000", "r");
    assert_int_equal (tf_store_request_expire (fx->store, T0 + backlog, 0), 0);

    //  The log, keeping the newest 10 changes: the same two steps
    assert_int_equal (tf_store_trim (fx->store, 10, 0), 1);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), TF_STORE_STEP_ROWS + 1);
    assert_int_equal (tf_store_trim (fx->store, 10, 0), 0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM changes"), 10);
    assert_int_equal (s_sql (fx->path, "SELECT min(seq) FROM changes"), backlog + 1);
    assert_int_equal (tf_store_trim (fx->store, 10, 0), 0);
    s_assert_caught_up (fx);
}

// --------------------------------------------------------------- migration

/*  Schema 1 as the previous release wrote it (its migration 1). */
static const char *s_schema_1 =
    "PRAGMA application_id = 1413891396;"
    "BEGIN;" TF_COLUMNS_CREATE
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;"
    "CREATE TABLE state (one INTEGER PRIMARY KEY CHECK (one = 1),"
    "  record_count INTEGER NOT NULL, digest INTEGER NOT NULL) STRICT;"
    "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)), sector INTEGER NOT NULL,"
    "  id TEXT NOT NULL, revision INTEGER NOT NULL, sector_prev_seq INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL, body BLOB) STRICT;"
    "CREATE INDEX changes_sector ON changes (sector, seq);"
    "CREATE TABLE sector_heads (sector INTEGER PRIMARY KEY, seq INTEGER NOT NULL) STRICT;"
    "CREATE TABLE requests (request_id TEXT PRIMARY KEY NOT NULL, reply BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL) STRICT;"
    "CREATE INDEX requests_created ON requests (created_ms);"
    "INSERT INTO meta (key, value) VALUES ('epoch', '0123456789abcdef0123456789abcdef'),"
    "  ('created_ms', 1700000000000);"
    "INSERT INTO sector_heads (sector, seq) VALUES (5, 8), (6, 7);"
    "INSERT INTO requests (request_id, reply, created_ms) VALUES"
    "  ('req-old', x'0a0b00ff', 1700000000001), ('req-new', x'', 1700000000002);"
    "PRAGMA user_version = 1;";

/*  A milestone stored at `revision` in schema 1: its records row and its
    last change (seq), both from the same packed body. */
static void s_v1_record (sqlite3 *db, const char *id, int sector, uint64_t revision, int seq)
{
    Techfeed__Milestone *m = s_record (id, sector, "v1");
    m->revision = revision;
    m->updated_at_ms = T0 + seq;
    size_t size;
    uint8_t *body = tf_wire_pack (&m->base, &size);
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, TF_COLUMNS_UPSERT, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (tf_columns_bind (stmt, m, body, size), 0);
    assert_int_equal (sqlite3_step (stmt), SQLITE_DONE);
    sqlite3_finalize (stmt);
    assert_int_equal (
        sqlite3_prepare_v2 (db, "INSERT INTO changes VALUES (?1, 1, ?2, ?3, ?4, 0, ?5, ?6)", -1,
                            &stmt, NULL),
        SQLITE_OK);
    sqlite3_bind_int (stmt, 1, seq);
    sqlite3_bind_int (stmt, 2, sector);
    sqlite3_bind_text (stmt, 3, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, (int64_t) revision);
    sqlite3_bind_int64 (stmt, 5, T0 + seq);
    sqlite3_bind_blob (stmt, 6, body, (int) size, SQLITE_STATIC);
    assert_int_equal (sqlite3_step (stmt), SQLITE_DONE);
    sqlite3_finalize (stmt);
    free (body);
    techfeed__milestone__free_unpacked (m, NULL);
}

/*  A schema-1 file: "mig-a" (space, revision 2, change 5), "mig-b" (rail,
    revision 1, change 7); change 8 was trimmed, so only sqlite_sequence
    knows the head; two cached replies. */
static void s_make_v1 (const char *path)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec (db, s_schema_1, NULL, NULL, &err) != SQLITE_OK)
        fail_msg ("schema 1: %s", err);
    s_v1_record (db, "mig-a", SPACE, 2, 5);
    s_v1_record (db, "mig-b", RAIL, 1, 7);
    uint64_t digest = tf_digest_item ("mig-a", 2) + tf_digest_item ("mig-b", 1);
    char sql[256];
    snprintf (sql, sizeof sql,
              "INSERT INTO state (one, record_count, digest) VALUES (1, 2, %lld);"
              "INSERT INTO changes VALUES (8, 2, 5, 'gone', 1, 5, %lld, NULL);"
              "DELETE FROM changes WHERE seq = 8; COMMIT",
              (long long) tf_columns_i64 (digest), T0 + 8);
    if (sqlite3_exec (db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg ("schema 1 rows: %s", err);
    sqlite3_close (db);
}

static void test_migrate_from_schema_1 (void **state)
{
    fixture_t *fx = *state;
    tf_store_destroy (&fx->store);
    tf_test_rmtree (fx->dir); // a file of the old release instead
    free (fx->dir);
    fx->dir = tf_test_tempdir ();
    snprintf (fx->path, sizeof fx->path, "%s/v1.db", fx->dir);
    s_make_v1 (fx->path);
    assert_int_equal (s_sql (fx->path, "SELECT seq FROM sqlite_sequence WHERE name = 'changes'"),
                      8);

    s_reopen (fx);
    assert_int_equal (tf_store_schema_version (), 4);
    assert_int_equal (s_sql (fx->path, "PRAGMA user_version"), 4);
    assert_string_equal (tf_store_epoch (fx->store), "0123456789abcdef0123456789abcdef");
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.head_sequence, 8);
    assert_int_equal (st.log_first_sequence, 5);
    assert_int_equal (st.record_count, 2);
    assert_true (st.digest == tf_digest_item ("mig-a", 2) + tf_digest_item ("mig-b", 1));
    assert_int_equal (st.sector_heads[SPACE], 8);
    assert_int_equal (st.sector_heads[RAIL], 7);
    assert_int_equal (tf_store_unapplied (fx->store), 0);
    assert_int_equal (s_sql (fx->path, "SELECT applied = 8 FROM state"), 1);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM sqlite_schema WHERE name = 'requests'"
                                       " OR name = 'replies' OR sql LIKE '%%AUTOINCREMENT%%'"),
                      0);
    //  Each cached reply became a group of one (schema 4)
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM reply_groups WHERE count = 1"), 2);
    //  The log is appended to only: no index besides its sequence key;
    //  records lost the date index (schema 3), kept the sector one
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM sqlite_schema"
                                       " WHERE name IN ('changes_sector', 'records_date')"),
                      0);
    assert_int_equal (s_sql (fx->path, "SELECT count(*) FROM sqlite_schema"
                                       " WHERE name = 'records_sector'"),
                      1);
    char why[256];
    if (!tf_sql_intact (fx->path, why, sizeof why))
        fail_msg ("%s", why);

    //  Records and the cached replies, byte for byte
    s_assert_get (fx->store, "mig-a", 2, "v1");
    assert_int_equal (s_revision (fx->store, "mig-b", NULL, 0), 1);
    uint8_t *reply = NULL;
    size_t size = 0;
    assert_int_equal (tf_store_request_get (fx->store, "req-old", &reply, &size), 0);
    assert_int_equal (size, 4);
    assert_memory_equal (reply, "\x0a\x0b\x00\xff", 4);
    free (reply);
    assert_int_equal (tf_store_request_get (fx->store, "req-new", &reply, &size), 0);
    assert_int_equal (size, 0);
    free (reply);

    //  The index knows the migrated records; sequences go on from 8
    s_assert_indexed (fx->store, "mig-a", 2, SPACE);
    s_assert_indexed (fx->store, "mig-b", 1, RAIL);
    tf_change_t change;
    assert_int_equal (s_try_put (fx->store, "mig-a", SPACE, "v2", true, 2, T0 + 9, &change), 0);
    assert_int_equal (change.sequence, 9);
    assert_int_equal (change.revision, 3);
    assert_int_equal (change.sector_prev_sequence, 8);
    s_request_put (fx->store, "req-3", "third", T0 + 9);
    assert_int_equal (s_sql (fx->path, S_CACHED), 3);

    //  Catch-up over the migrated log: 5, 7, 9
    int rc;
    tf_store_cursor_t *cursor = tf_store_changes_open (fx->store, 4, NULL, &rc);
    assert_non_null (cursor);
    Techfeed__ChangeEvent *event;
    uint64_t seqs = 0;
    while ((rc = tf_store_cursor_next_change (cursor, &event)) == 1) {
        seqs = seqs * 10 + event->sequence;
        techfeed__change_event__free_unpacked (event, NULL);
    }
    assert_int_equal (rc, 0);
    tf_store_cursor_destroy (&cursor);
    assert_int_equal (seqs, 579);

    //  And the migrated file opens again as schema 4
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_reopen (fx);
    s_assert_caught_up (fx);
    assert_int_equal (s_state (fx->store).head_sequence, 9);
    assert_int_equal (s_revision (fx->store, "mig-a", NULL, 0), 3);
    s_assert_reply (fx->store, "req-3", "third");
}

/*  Every test has the fixture. */
#define S_TEST(test) cmocka_unit_test_setup_teardown (test, setup, teardown)

int main (void)
{
    const struct CMUnitTest tests[] = {
        S_TEST (test_records_lag_and_catch_up),
        S_TEST (test_snapshot_merges_tail),
        S_TEST (test_reopen_with_unapplied_tail),
        S_TEST (test_index_undo_rollback),
        S_TEST (test_index_undo_savepoint),
        S_TEST (test_index_undo_outer_savepoint),
        S_TEST (test_sequences_no_gap),
        S_TEST (test_trim_keeps_unapplied),
        S_TEST (test_trim_by_age_keeps_a_prefix),
        S_TEST (test_apply_undecodable_body),
        S_TEST (test_apply_on_full_disk),
        S_TEST (test_request_cache),
        S_TEST (test_reply_groups),
        S_TEST (test_reply_group_large),
        S_TEST (test_reply_group_damaged),
        S_TEST (test_housekeeping_in_steps),
        S_TEST (test_migrate_from_schema_1),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
