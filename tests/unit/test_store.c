/*  Unit tests for storage/tf_store: schema, writes, transactions, cursors,
    retention, the idempotency cache and refusal of foreign or damaged files.
    Each test works in its own mkdtemp directory under /tmp. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tf_sqlcheck.h"
#include "tf_store.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define T0 1700000000000LL /* a fixed "now" in Unix ms */

typedef struct {
    char dir[64];   /* the mkdtemp directory */
    char path[128]; /* dir/store.db */
    tf_store_t *store;
} fixture_t;

// --------------------------------------------------------------- helpers

static char *s_dup (const char *text)
{
    char *copy = strdup (text);
    assert_non_null (copy);
    return copy;
}

static char **s_list (size_t count, ...)
{
    char **list = calloc (count ? count : 1, sizeof *list);
    assert_non_null (list);
    va_list ap;
    va_start (ap, count);
    for (size_t i = 0; i < count; i++)
        list[i] = s_dup (va_arg (ap, const char *));
    va_end (ap);
    return list;
}

/*  A milestone with every field set; free with techfeed__milestone__free_unpacked. */
static Techfeed__Milestone *s_record (const char *id, int sector, const char *date,
                                      const char *country, const char *org)
{
    Techfeed__Milestone *m = calloc (1, sizeof *m);
    assert_non_null (m);
    techfeed__milestone__init (m);
    m->id = s_dup (id);
    m->has_sector = 1;
    m->sector = (Techfeed__Sector) sector;
    m->title = s_dup ("China's high-speed rail network passes 40,000 km");
    m->summary = s_dup ("The world's largest \"HSR\" network; ünïcode ✓.");
    m->n_organizations = 2;
    m->organizations = s_list (2, org, "China State Railway Group");
    m->country = s_dup (country);
    m->date = s_dup (date);
    m->has_status = 1;
    m->status = TECHFEED__MILESTONE_STATUS__STATUS_ACHIEVED;
    m->n_metrics = 1;
    m->metrics = calloc (1, sizeof *m->metrics);
    assert_non_null (m->metrics);
    m->metrics[0] = calloc (1, sizeof **m->metrics);
    assert_non_null (m->metrics[0]);
    techfeed__metric__init (m->metrics[0]);
    m->metrics[0]->name = s_dup ("network length");
    m->metrics[0]->has_value = 1;
    m->metrics[0]->value = 40000;
    m->metrics[0]->unit = s_dup ("km");
    m->n_sources = 1;
    m->sources = s_list (1, "https://example.org/hsr");
    m->n_tags = 2;
    m->tags = s_list (2, "rail", "infrastructure");
    return m;
}

static void s_free (Techfeed__Milestone *m)
{
    if (m)
        techfeed__milestone__free_unpacked (m, NULL);
}

/*  Puts a fresh record (no expected revision) and returns its change. */
static tf_change_t s_put (tf_store_t *store, const char *id, int sector, const char *date,
                          const char *country, const char *org, int64_t now)
{
    Techfeed__Milestone *m = s_record (id, sector, date, country, org);
    tf_change_t change;
    int rc = tf_store_put (store, m, false, 0, now, &change);
    if (rc)
        fail_msg ("put %s: %d %s", id, rc, tf_store_errstr (store));
    s_free (m);
    return change;
}

static tf_store_state_t s_state (tf_store_t *store)
{
    tf_store_state_t state;
    assert_int_equal (tf_store_state (store, &state), 0);
    return state;
}

static bool s_packed_equal (const Techfeed__Milestone *a, const Techfeed__Milestone *b)
{
    size_t na, nb;
    uint8_t *pa = tf_wire_pack (&a->base, &na);
    uint8_t *pb = tf_wire_pack (&b->base, &nb);
    bool equal = na == nb && memcmp (pa, pb, na) == 0;
    free (pa);
    free (pb);
    return equal;
}

/*  Ids of a snapshot cursor, comma-joined, into out. Returns the count. */
static int s_snapshot_ids (tf_store_cursor_t *cursor, char *out, size_t size)
{
    int count = 0;
    out[0] = 0;
    Techfeed__Milestone *m;
    int rc;
    while ((rc = tf_store_cursor_next_record (cursor, &m)) == 1) {
        size_t len = strlen (out);
        snprintf (out + len, size - len, "%s%s", count ? "," : "", m->id);
        count++;
        s_free (m);
    }
    assert_int_equal (rc, 0);
    assert_int_equal (tf_store_cursor_next_record (cursor, &m), 0); // stays at the end
    return count;
}

static int s_snapshot_filtered (tf_store_t *store, const Techfeed__Filter *filter, char *out,
                                size_t size)
{
    tf_store_cursor_t *cursor = tf_store_snapshot_open (store, filter);
    assert_non_null (cursor);
    int count = s_snapshot_ids (cursor, out, size);
    tf_store_cursor_destroy (&cursor);
    return count;
}

/*  Sequences of a catch-up cursor, comma-joined. */
static int s_change_seqs (tf_store_t *store, uint64_t since, const Techfeed__Filter *filter,
                          char *out, size_t size)
{
    int rc = 99;
    tf_store_cursor_t *cursor = tf_store_changes_open (store, since, filter, &rc);
    assert_non_null (cursor);
    assert_int_equal (rc, 0);
    int count = 0;
    out[0] = 0;
    Techfeed__ChangeEvent *event;
    while ((rc = tf_store_cursor_next_change (cursor, &event)) == 1) {
        size_t len = strlen (out);
        snprintf (out + len, size - len, "%s%llu", count ? "," : "",
                  (unsigned long long) event->sequence);
        count++;
        techfeed__change_event__free_unpacked (event, NULL);
    }
    assert_int_equal (rc, 0);
    tf_store_cursor_destroy (&cursor);
    return count;
}

/*  One integer from the database file through a connection of our own. */
static int64_t s_sql_int (const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return value;
}

static void s_sql_text (const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    const char *text = (const char *) sqlite3_column_text (stmt, 0);
    snprintf (out, size, "%s", text ? text : "(null)");
    sqlite3_finalize (stmt);
    sqlite3_close (db);
}

/*  Changes the file through a connection of its own. */
static void s_sql_exec (const char *path, const char *sql)
{
    char why[256];
    if (tf_sql_exec (path, sql, why, sizeof why))
        fail_msg ("%s: %s", sql, why);
}

static void s_write_file (const char *path, const void *data, size_t size)
{
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (data, 1, size, file), size);
    fclose (file);
}

/*  Reopening refuses the file; the message names the file and `problem`. */
static void s_assert_refused (const char *path, const char *problem)
{
    char err[512] = "";
    tf_store_t *store = tf_store_new (path, err, sizeof err);
    if (store)
        fail_msg ("%s was accepted", path);
    if (!strstr (err, path) || !strstr (err, problem) || strchr (err, '\n'))
        fail_msg ("message \"%s\" lacks the path or \"%s\"", err, problem);
    print_message ("refused: %s\n", err);
}

// --------------------------------------------------------------- fixture

static int setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    assert_non_null (fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/tf_store_XXXXXX");
    assert_non_null (mkdtemp (fx->dir));
    snprintf (fx->path, sizeof fx->path, "%s/store.db", fx->dir);
    char err[512];
    fx->store = tf_store_new (fx->path, err, sizeof err);
    if (!fx->store)
        fail_msg ("tf_store_new: %s", err);
    *state = fx;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *fx = *state;
    tf_store_destroy (&fx->store);
    tf_store_destroy (&fx->store); // safe twice
    tf_test_remove_db (fx->path);
    char other[160];
    snprintf (other, sizeof other, "%s/other.db", fx->dir);
    tf_test_remove_db (other);
    if (rmdir (fx->dir))
        fail_msg ("rmdir %s: leftovers", fx->dir);
    free (fx);
    return 0;
}

/*  Closes and opens the fixture's store again. */
static void s_reopen (fixture_t *fx)
{
    tf_store_destroy (&fx->store);
    char err[512];
    fx->store = tf_store_new (fx->path, err, sizeof err);
    if (!fx->store)
        fail_msg ("reopen: %s", err);
}

// --------------------------------------------------------------- tests

static void test_create (void **state)
{
    fixture_t *fx = *state;
    const char *epoch = tf_store_epoch (fx->store);
    assert_int_equal (strlen (epoch), 32);
    assert_int_equal (strspn (epoch, "0123456789abcdef"), 32);
    assert_string_equal (tf_store_path (fx->store), fx->path);

    tf_store_state_t st = s_state (fx->store);
    assert_string_equal (st.epoch, epoch);
    assert_int_equal (st.head_sequence, 0);
    assert_int_equal (st.log_first_sequence, 1);
    assert_int_equal (st.record_count, 0);
    assert_int_equal (st.digest, 0);
    for (int s = 0; s < 11; s++)
        assert_int_equal (st.sector_heads[s], 0);

    assert_int_equal (s_sql_int (fx->path, "PRAGMA user_version"), tf_store_schema_version ());
    assert_int_equal (s_sql_int (fx->path, "PRAGMA application_id"), 0x54464544);
    //  records: the id key and the sector index (filtered snapshots), no
    //  date index for the applier to keep (schema 3)
    assert_int_equal (s_sql_int (fx->path, "SELECT group_concat (name, ' ') = 'records_sector'"
                                           " FROM sqlite_schema WHERE type = 'index'"
                                           " AND tbl_name = 'records' AND sql IS NOT NULL"),
                      1);
    char mode[16];
    s_sql_text (fx->path, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal (mode, "wal");
    char stored[64];
    s_sql_text (fx->path, "SELECT value FROM meta WHERE key = 'epoch'", stored, sizeof stored);
    assert_string_equal (stored, epoch);

    //  A second store gets another epoch
    char other[160], err[512];
    snprintf (other, sizeof other, "%s/other.db", fx->dir);
    tf_store_t *store = tf_store_new (other, err, sizeof err);
    assert_non_null (store);
    assert_string_not_equal (tf_store_epoch (store), epoch);
    tf_store_destroy (&store);
    assert_null (store);

    assert_null (tf_store_new (":memory:", err, sizeof err));
}

static void test_put_get (void **state)
{
    fixture_t *fx = *state;
    Techfeed__Milestone *m = s_record ("cn-hsr-40000km", TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL,
                                       "2023-12", "CN", "China Railway");
    tf_change_t change;
    assert_int_equal (tf_store_put (fx->store, m, false, 0, T0, &change), 0);
    assert_int_equal (change.sequence, 1);
    assert_int_equal (change.revision, 1);
    assert_int_equal (change.sector_prev_sequence, 0);
    assert_int_equal (change.sector, TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL);
    assert_int_equal (change.timestamp_ms, T0);
    assert_false (m->has_revision); // the caller's record is not touched
    assert_false (m->has_updated_at_ms);
    //  ... and the put hands back the bytes it stored, kept until the next call
    size_t stored_size = change.body_size;
    uint8_t *stored = malloc (stored_size);
    assert_non_null (change.body);
    memcpy (stored, change.body, stored_size);

    Techfeed__Milestone *got = NULL;
    assert_int_equal (tf_store_get (fx->store, "cn-hsr-40000km", &got), 0);
    assert_true (got->has_revision);
    assert_int_equal (got->revision, 1);
    assert_true (got->has_updated_at_ms);
    assert_int_equal (got->updated_at_ms, T0);
    assert_string_equal (got->title, m->title);
    assert_string_equal (got->summary, m->summary);
    assert_int_equal (got->n_organizations, 2);
    assert_string_equal (got->organizations[1], "China State Railway Group");
    assert_int_equal (got->n_metrics, 1);
    assert_true (got->metrics[0]->value == 40000.0);
    assert_string_equal (got->metrics[0]->unit, "km");
    assert_int_equal (got->status, TECHFEED__MILESTONE_STATUS__STATUS_ACHIEVED);
    //  Everything else, byte for byte
    m->has_revision = 1;
    m->revision = 1;
    m->has_updated_at_ms = 1;
    m->updated_at_ms = T0;
    assert_true (s_packed_equal (m, got));
    size_t size;
    uint8_t *packed = tf_wire_pack (&got->base, &size);
    assert_int_equal (size, stored_size);
    assert_memory_equal (packed, stored, size);
    free (packed);
    free (stored);
    s_free (got);

    //  Columns for plain SQL, once the log is applied
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    char text[256];
    s_sql_text (fx->path, "SELECT organizations FROM records", text, sizeof text);
    assert_string_equal (text, "[\"China Railway\",\"China State Railway Group\"]");
    s_sql_text (fx->path, "SELECT metrics FROM records", text, sizeof text);
    assert_string_equal (text, "[{\"name\":\"network length\",\"value\":40000.0,\"unit\":\"km\"}]");
    s_sql_text (fx->path, "SELECT tags FROM records", text, sizeof text);
    assert_string_equal (text, "[\"rail\",\"infrastructure\"]");
    assert_int_equal (
        s_sql_int (fx->path, "SELECT count(*) FROM records WHERE sector = 6 AND date = '2023-12'"
                             " AND country = 'CN' AND status = 3 AND revision = 1"),
        1);

    //  Second put: revision 2, chained to the first change
    m->has_revision = 0;
    free (m->title);
    m->title = s_dup ("Network passes 45,000 km");
    assert_int_equal (tf_store_put (fx->store, m, true, 1, T0 + 5, &change), 0);
    assert_int_equal (change.sequence, 2);
    assert_int_equal (change.revision, 2);
    assert_int_equal (change.sector_prev_sequence, 1);
    assert_int_equal (tf_store_get (fx->store, "cn-hsr-40000km", &got), 0);
    assert_int_equal (got->revision, 2);
    assert_int_equal (got->updated_at_ms, T0 + 5);
    assert_string_equal (got->title, "Network passes 45,000 km");
    s_free (got);

    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.record_count, 1);
    assert_int_equal (st.head_sequence, 2);
    assert_int_equal (st.log_first_sequence, 1);
    assert_int_equal (st.sector_heads[TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL], 2);
    assert_true (st.digest == tf_digest_item ("cn-hsr-40000km", 2));

    assert_int_equal (tf_store_get (fx->store, "nope", &got), TF_STORE_NOT_FOUND);
    assert_null (got);
    s_free (m);
}

static void test_delete (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "change-4", TECHFEED__SECTOR__SECTOR_SPACE, "2019-01-03", "CN", "CNSA", T0);
    tf_store_state_t before = s_state (fx->store);
    assert_true (before.digest != 0);

    s_put (fx->store, "tianwen-1", TECHFEED__SECTOR__SECTOR_SPACE, "2021-05-15", "CN", "CNSA",
           T0 + 1);
    s_put (fx->store, "tianwen-1", TECHFEED__SECTOR__SECTOR_SPACE, "2021-05-15", "CN", "CNSA",
           T0 + 2);
    assert_int_equal (s_state (fx->store).record_count, 2);

    tf_change_t change;
    assert_int_equal (tf_store_delete (fx->store, "tianwen-1", true, 2, T0 + 3, &change), 0);
    assert_int_equal (change.sequence, 4);
    assert_int_equal (change.revision, 2);
    assert_int_equal (change.sector, TECHFEED__SECTOR__SECTOR_SPACE);
    assert_int_equal (change.sector_prev_sequence, 3);

    tf_store_state_t after = s_state (fx->store);
    assert_int_equal (after.record_count, 1);
    assert_true (after.digest == before.digest);
    assert_int_equal (after.head_sequence, 4);
    Techfeed__Milestone *got;
    assert_int_equal (tf_store_get (fx->store, "tianwen-1", &got), TF_STORE_NOT_FOUND);
    assert_int_equal (tf_store_delete (fx->store, "tianwen-1", false, 0, T0 + 4, &change),
                      TF_STORE_NOT_FOUND);
    assert_int_equal (tf_store_delete (fx->store, "tianwen-1", true, 0, T0 + 4, &change),
                      TF_STORE_NOT_FOUND);

    //  The tombstone in the log
    int rc;
    tf_store_cursor_t *cursor = tf_store_changes_open (fx->store, 3, NULL, &rc);
    assert_non_null (cursor);
    Techfeed__ChangeEvent *event;
    assert_int_equal (tf_store_cursor_next_change (cursor, &event), 1);
    assert_string_equal (event->epoch, tf_store_epoch (fx->store));
    assert_int_equal (event->sequence, 4);
    assert_int_equal (event->kind, TECHFEED__CHANGE_KIND__CHANGE_DELETE);
    assert_string_equal (event->id, "tianwen-1");
    assert_int_equal (event->revision, 2);
    assert_int_equal (event->sector, TECHFEED__SECTOR__SECTOR_SPACE);
    assert_int_equal (event->sector_prev_sequence, 3);
    assert_int_equal (event->timestamp_ms, T0 + 3);
    assert_null (event->record);
    techfeed__change_event__free_unpacked (event, NULL);
    assert_int_equal (tf_store_cursor_next_change (cursor, &event), 0);
    tf_store_cursor_destroy (&cursor);
    assert_null (cursor);

    //  Deleting the last record brings the digest back to 0
    assert_int_equal (tf_store_delete (fx->store, "change-4", false, 0, T0 + 5, NULL), 0);
    after = s_state (fx->store);
    assert_int_equal (after.record_count, 0);
    assert_true (after.digest == 0);

    //  A deleted id starts again at revision 1
    tf_change_t again = s_put (fx->store, "tianwen-1", TECHFEED__SECTOR__SECTOR_OTHER, "2021", "CN",
                               "CNSA", T0 + 6);
    assert_int_equal (again.revision, 1);
}

static void test_conflicts (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "apollo-go", TECHFEED__SECTOR__SECTOR_AI, "2022-08", "CN", "Baidu", T0);
    Techfeed__Milestone *m =
        s_record ("apollo-go", TECHFEED__SECTOR__SECTOR_AI, "2022-08", "CN", "Baidu");
    tf_change_t change;

    assert_int_equal (tf_store_put (fx->store, m, true, 0, T0, &change), TF_STORE_CONFLICT);
    assert_int_equal (change.current_revision, 1);
    assert_non_null (strstr (tf_store_errstr (fx->store), "apollo-go"));
    assert_int_equal (tf_store_put (fx->store, m, true, 2, T0, &change), TF_STORE_CONFLICT);
    assert_int_equal (change.current_revision, 1);
    assert_int_equal (tf_store_put (fx->store, m, true, 1, T0, &change), 0);
    assert_int_equal (change.revision, 2);
    assert_int_equal (tf_store_put (fx->store, m, true, 1, T0, &change), TF_STORE_CONFLICT);
    assert_int_equal (change.current_revision, 2);

    assert_int_equal (tf_store_delete (fx->store, "apollo-go", true, 1, T0, &change),
                      TF_STORE_CONFLICT);
    assert_int_equal (change.current_revision, 2);
    assert_int_equal (tf_store_delete (fx->store, "apollo-go", true, 0, T0, &change),
                      TF_STORE_CONFLICT);

    //  "Must not exist" on a new id succeeds
    free (m->id);
    m->id = s_dup ("apollo-go-wuhan");
    assert_int_equal (tf_store_put (fx->store, m, true, 0, T0, &change), 0);
    assert_int_equal (change.revision, 1);

    //  Conflicts wrote nothing
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.head_sequence, 3);
    assert_int_equal (st.record_count, 2);
    assert_true (st.digest ==
                 tf_digest_item ("apollo-go", 2) + tf_digest_item ("apollo-go-wuhan", 1));
    s_free (m);
}

static void test_immutable_sector (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "quantum-jiuzhang", TECHFEED__SECTOR__SECTOR_QUANTUM, "2020-12", "CN", "USTC",
           T0);
    Techfeed__Milestone *m =
        s_record ("quantum-jiuzhang", TECHFEED__SECTOR__SECTOR_AI, "2020-12", "CN", "USTC");
    tf_change_t change;
    assert_int_equal (tf_store_put (fx->store, m, false, 0, T0, &change), TF_STORE_IMMUTABLE);
    assert_int_equal (change.sector, TECHFEED__SECTOR__SECTOR_QUANTUM);
    Techfeed__Milestone *got;
    assert_int_equal (tf_store_get (fx->store, "quantum-jiuzhang", &got), 0);
    assert_int_equal (got->sector, TECHFEED__SECTOR__SECTOR_QUANTUM);
    assert_int_equal (got->revision, 1);
    s_free (got);
    assert_int_equal (s_state (fx->store).head_sequence, 1);
    s_free (m);
}

static void test_rollback (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "fast-telescope", TECHFEED__SECTOR__SECTOR_SPACE, "2016-09", "CN", "NAOC",
           T0);
    tf_store_state_t before = s_state (fx->store);

    assert_int_equal (tf_store_begin (fx->store), 0);
    assert_int_equal (tf_store_begin (fx->store), TF_STORE_ERROR); // no nesting
    s_put (fx->store, "5g-base-stations", TECHFEED__SECTOR__SECTOR_TELECOM, "2023", "CN", "MIIT",
           T0 + 1);
    s_put (fx->store, "fast-telescope", TECHFEED__SECTOR__SECTOR_SPACE, "2016-09", "CN", "NAOC",
           T0 + 1);
    assert_int_equal (tf_store_delete (fx->store, "fast-telescope", false, 0, T0 + 2, NULL), 0);
    assert_int_equal (tf_store_savepoint (fx->store), 0); // left open: rollback ends it too
    assert_int_equal (tf_store_request_put (fx->store, "req-1", (const uint8_t *) "r", 1, T0), 0);
    assert_int_equal (tf_store_rollback (fx->store), 0);

    tf_store_state_t after = s_state (fx->store);
    assert_memory_equal (&before, &after, sizeof before);
    Techfeed__Milestone *got;
    assert_int_equal (tf_store_get (fx->store, "5g-base-stations", &got), TF_STORE_NOT_FOUND);
    assert_int_equal (tf_store_get (fx->store, "fast-telescope", &got), 0);
    assert_int_equal (got->revision, 1);
    s_free (got);
    assert_int_equal (s_sql_int (fx->path, "SELECT count(*) FROM changes"), 1);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (s_sql_int (fx->path, "SELECT count(*) FROM sector_heads"), 1);
    assert_int_equal (s_sql_int (fx->path, "SELECT count(*) FROM records"), 1);
    uint8_t *reply;
    size_t size;
    assert_int_equal (tf_store_request_get (fx->store, "req-1", &reply, &size), TF_STORE_NOT_FOUND);

    //  No gap: the next change takes the next sequence
    tf_change_t change = s_put (fx->store, "5g-base-stations", TECHFEED__SECTOR__SECTOR_TELECOM,
                                "2023", "CN", "MIIT", T0 + 3);
    assert_int_equal (change.sequence, 2);
    assert_int_equal (change.sector_prev_sequence, 0);

    assert_int_equal (tf_store_commit (fx->store), TF_STORE_ERROR); // none open
    assert_int_equal (tf_store_rollback (fx->store), 0);            // harmless
    assert_int_equal (tf_store_release (fx->store), TF_STORE_ERROR);
    assert_int_equal (tf_store_rollback_to (fx->store), TF_STORE_ERROR);
}

static void test_savepoints (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (tf_store_begin (fx->store), 0);

    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "a", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    assert_int_equal (tf_store_release (fx->store), 0);

    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "b", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    assert_int_equal (tf_store_rollback_to (fx->store), 0);

    //  Nested: the inner one undone, the outer one kept
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "c", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    s_put (fx->store, "d", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    assert_int_equal (tf_store_rollback_to (fx->store), 0);
    assert_int_equal (tf_store_release (fx->store), 0);

    //  A failed item inside a savepoint leaves its neighbours alone
    Techfeed__Milestone *m = s_record ("a", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X");
    assert_int_equal (tf_store_savepoint (fx->store), 0);
    assert_int_equal (tf_store_put (fx->store, m, true, 0, T0, NULL), TF_STORE_CONFLICT);
    assert_int_equal (tf_store_rollback_to (fx->store), 0);
    s_free (m);
    assert_int_equal (tf_store_commit (fx->store), 0);

    char ids[256];
    assert_int_equal (s_snapshot_filtered (fx->store, NULL, ids, sizeof ids), 2);
    assert_string_equal (ids, "a,c");
    char seqs[256];
    s_change_seqs (fx->store, 0, NULL, seqs, sizeof seqs);
    assert_string_equal (seqs, "1,2");
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.head_sequence, 2);
    assert_int_equal (st.record_count, 2);
    assert_int_equal (st.sector_heads[TECHFEED__SECTOR__SECTOR_AI], 2);
    assert_true (st.digest == tf_digest_item ("a", 1) + tf_digest_item ("c", 1));
}

static void test_changes_since (void **state)
{
    fixture_t *fx = *state;
    const int ai = TECHFEED__SECTOR__SECTOR_AI, space = TECHFEED__SECTOR__SECTOR_SPACE,
              rail = TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL;
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "ai-1", ai, "2020", "CN", "X", T0 + 1);       // 1
    s_put (fx->store, "space-1", space, "2020", "CN", "X", T0 + 2); // 2
    s_put (fx->store, "ai-2", ai, "2021", "CN", "X", T0 + 3);       // 3
    s_put (fx->store, "rail-1", rail, "2021", "CN", "X", T0 + 4);   // 4
    assert_int_equal (tf_store_commit (fx->store), 0);
    assert_int_equal (tf_store_delete (fx->store, "space-1", false, 0, T0 + 5, NULL), 0); // 5
    s_put (fx->store, "ai-1", ai, "2020", "CN", "X", T0 + 6);                             // 6
    s_put (fx->store, "space-2", space, "2022", "CN", "X", T0 + 7);                       // 7

    char seqs[256];
    assert_int_equal (s_change_seqs (fx->store, 0, NULL, seqs, sizeof seqs), 7);
    assert_string_equal (seqs, "1,2,3,4,5,6,7");
    assert_int_equal (s_change_seqs (fx->store, 4, NULL, seqs, sizeof seqs), 3);
    assert_string_equal (seqs, "5,6,7");
    assert_int_equal (s_change_seqs (fx->store, 7, NULL, seqs, sizeof seqs), 0);

    Techfeed__Sector sectors[] = { TECHFEED__SECTOR__SECTOR_SPACE, TECHFEED__SECTOR__SECTOR_AI };
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.n_sectors = 1;
    filter.sectors = sectors;
    s_change_seqs (fx->store, 0, &filter, seqs, sizeof seqs);
    assert_string_equal (seqs, "2,5,7");
    filter.n_sectors = 2;
    s_change_seqs (fx->store, 2, &filter, seqs, sizeof seqs);
    assert_string_equal (seqs, "3,5,6,7");

    //  Each event points at the previous one of its sector
    int rc;
    tf_store_cursor_t *cursor = tf_store_changes_open (fx->store, 0, NULL, &rc);
    assert_non_null (cursor);
    assert_int_equal (tf_store_cursor_sequence (cursor), 7);
    const uint64_t *heads = tf_store_cursor_sector_heads (cursor);
    assert_int_equal (heads[ai], 6);
    assert_int_equal (heads[space], 7);
    assert_int_equal (heads[rail], 4);
    assert_int_equal (heads[TECHFEED__SECTOR__SECTOR_QUANTUM], 0);
    uint64_t last[11] = { 0 };
    Techfeed__ChangeEvent *event;
    int n = 0;
    while (tf_store_cursor_next_change (cursor, &event) == 1) {
        assert_int_equal (event->sequence, ++n);
        assert_int_equal (event->sector_prev_sequence, last[event->sector]);
        last[event->sector] = event->sequence;
        if (event->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT) {
            assert_non_null (event->record);
            assert_string_equal (event->record->id, event->id);
            assert_int_equal (event->record->revision, event->revision);
            assert_int_equal (event->record->updated_at_ms, event->timestamp_ms);
        }
        techfeed__change_event__free_unpacked (event, NULL);
    }
    assert_int_equal (n, 7);
    assert_memory_equal (last, heads, sizeof last);
    tf_store_cursor_destroy (&cursor);

    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.sector_heads[ai], 6);
    assert_int_equal (st.sector_heads[space], 7);

    //  Beyond the head: the client must resnapshot
    rc = 0;
    assert_null (tf_store_changes_open (fx->store, 8, NULL, &rc));
    assert_int_equal (rc, TF_STORE_TRIMMED);
    assert_non_null (strstr (tf_store_errstr (fx->store), "beyond head 7"));

    //  In two steps (the service's reader): the cursor keeps its own copy
    //  of the filter, and says itself why it did not open
    filter.n_sectors = 1;
    cursor = tf_store_cursor_new (fx->store, true, 2, &filter);
    memset (sectors, 0, sizeof sectors); // the caller's filter goes
    assert_int_equal (tf_store_cursor_begin (cursor), TF_STORE_OK);
    n = 0;
    while (tf_store_cursor_next_change (cursor, &event) == 1) {
        assert_int_equal (event->sector, space);
        n = n * 10 + (int) event->sequence;
        techfeed__change_event__free_unpacked (event, NULL);
    }
    assert_int_equal (n, 57);
    tf_store_cursor_destroy (&cursor);
    char before[256];
    snprintf (before, sizeof before, "%s", tf_store_errstr (fx->store));
    cursor = tf_store_cursor_new (fx->store, true, 9, NULL);
    assert_int_equal (tf_store_cursor_begin (cursor), TF_STORE_TRIMMED);
    assert_non_null (strstr (tf_store_cursor_errstr (cursor), "position 9 is beyond head 7"));
    assert_string_equal (tf_store_errstr (fx->store), before);
    tf_store_cursor_destroy (&cursor);
}

static void test_snapshot_consistency (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "r1", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    s_put (fx->store, "r2", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    s_put (fx->store, "r3", TECHFEED__SECTOR__SECTOR_SPACE, "2020", "CN", "X", T0);

    tf_store_cursor_t *cursor = tf_store_snapshot_open (fx->store, NULL);
    assert_non_null (cursor);
    assert_int_equal (tf_store_cursor_sequence (cursor), 3);

    //  The writer goes on (a transaction, autocommit, a delete, an update)
    assert_int_equal (tf_store_begin (fx->store), 0);
    s_put (fx->store, "r0", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0 + 1);
    s_put (fx->store, "r4", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0 + 1);
    assert_int_equal (tf_store_commit (fx->store), 0);
    assert_int_equal (tf_store_delete (fx->store, "r1", false, 0, T0 + 2, NULL), 0);
    s_put (fx->store, "r2", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0 + 3);
    assert_int_equal (s_state (fx->store).head_sequence, 7);

    Techfeed__Milestone *m;
    const char *want[] = { "r1", "r2", "r3" };
    for (int i = 0; i < 3; i++) {
        assert_int_equal (tf_store_cursor_next_record (cursor, &m), 1);
        assert_string_equal (m->id, want[i]);
        assert_int_equal (m->revision, 1);
        s_free (m);
    }
    assert_int_equal (tf_store_cursor_next_record (cursor, &m), 0);
    assert_int_equal (tf_store_cursor_sequence (cursor), 3);
    assert_int_equal (tf_store_cursor_sector_heads (cursor)[TECHFEED__SECTOR__SECTOR_AI], 2);
    tf_store_cursor_destroy (&cursor);

    cursor = tf_store_snapshot_open (fx->store, NULL);
    assert_non_null (cursor);
    assert_int_equal (tf_store_cursor_sequence (cursor), 7);
    char ids[128];
    assert_int_equal (s_snapshot_ids (cursor, ids, sizeof ids), 4);
    assert_string_equal (ids, "r0,r2,r3,r4");
    tf_store_cursor_destroy (&cursor);
}

/*  The six records test_filters and test_filters_from_the_log search. */
static void s_put_filter_records (tf_store_t *store)
{
    const int ai = TECHFEED__SECTOR__SECTOR_AI, space = TECHFEED__SECTOR__SECTOR_SPACE;
    assert_int_equal (tf_store_begin (store), 0);
    s_put (store, "change-4", space, "2019-01-03", "CN", "CNSA", T0);
    s_put (store, "change-5", space, "2020-12-17", "CN", "CNSA", T0);
    s_put (store, "tianwen-1", space, "2021-05", "CN", "CNSA", T0);
    s_put (store, "ernie-bot", ai, "2023", "CN", "Baidu", T0);
    s_put (store, "alphafold", ai, "2020-11-30", "GB", "DeepMind", T0);
    s_put (store, "baidu-ai-2019", ai, "2019-12", "CN", "Baidu", T0);
    assert_int_equal (tf_store_commit (store), 0);
}

static void s_check_filters (fixture_t *fx)
{
    char ids[256];
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    assert_int_equal (s_snapshot_filtered (fx->store, &filter, ids, sizeof ids), 6);
    assert_string_equal (ids, "alphafold,baidu-ai-2019,change-4,change-5,ernie-bot,tianwen-1");

    filter.organization = "Baidu";
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "baidu-ai-2019,ernie-bot");
    filter.organization = "China State Railway Group"; // second element of every list
    assert_int_equal (s_snapshot_filtered (fx->store, &filter, ids, sizeof ids), 6);
    filter.organization = "Bai"; // exact, not a substring
    assert_int_equal (s_snapshot_filtered (fx->store, &filter, ids, sizeof ids), 0);
    filter.organization = "x' OR 1=1 --";
    assert_int_equal (s_snapshot_filtered (fx->store, &filter, ids, sizeof ids), 0);
    filter.organization = NULL;

    filter.country = "GB";
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "alphafold");
    filter.country = NULL;

    //  Dates compare as prefixes: date_to "2019" includes 2019-12
    filter.date_to = "2019";
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "baidu-ai-2019,change-4");
    filter.date_to = "2019-01";
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "change-4");
    filter.date_to = "2019-01-02";
    assert_int_equal (s_snapshot_filtered (fx->store, &filter, ids, sizeof ids), 0);
    filter.date_from = "2020";
    filter.date_to = "2020-12";
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "alphafold,change-5");
    filter.date_from = "2021";
    filter.date_to = NULL;
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "ernie-bot,tianwen-1");

    //  Everything together
    Techfeed__Sector sectors[] = { TECHFEED__SECTOR__SECTOR_SPACE, TECHFEED__SECTOR__SECTOR_OTHER };
    filter.n_sectors = 2;
    filter.sectors = sectors;
    filter.date_from = "2020";
    filter.date_to = "2021";
    filter.country = "CN";
    filter.organization = "CNSA";
    s_snapshot_filtered (fx->store, &filter, ids, sizeof ids);
    assert_string_equal (ids, "change-5,tianwen-1");
    filter.n_sectors = 1;
    sectors[0] = TECHFEED__SECTOR__SECTOR_OTHER;
    assert_int_equal (s_snapshot_filtered (fx->store, &filter, ids, sizeof ids), 0);
}

/*  The state tells how much memory the in-memory indexes hold: it grows
    with the ids stored and shrinks when they go. */
static void test_index_bytes (void **state)
{
    fixture_t *fx = *state;
    uint64_t empty = s_state (fx->store).index_bytes;
    for (int i = 0; i < 200; i++) {
        char id[48];
        snprintf (id, sizeof id, "a-rather-long-record-id-%03d", i);
        s_put (fx->store, id, TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    }
    uint64_t full = s_state (fx->store).index_bytes;
    assert_true (full >= empty + 200 * strlen ("a-rather-long-record-id-000"));
    for (int i = 0; i < 200; i++) {
        char id[48];
        snprintf (id, sizeof id, "a-rather-long-record-id-%03d", i);
        assert_int_equal (tf_store_delete (fx->store, id, false, 0, T0, NULL), 0);
    }
    assert_true (s_state (fx->store).index_bytes < full);
}

static void test_filters (void **state)
{
    fixture_t *fx = *state;
    s_put_filter_records (fx->store);
    s_check_filters (fx);
    assert_true (tf_store_unapplied (fx->store) > 0); // snapshots merged the log, applied nothing
}

/*  A cursor outlives the request its filter came from (the service reads
    chunks later, between writes): its strings may be gone before the rows
    are read. ASan reports a cursor that kept pointers to them. */
static void test_filter_outlived_by_cursor (void **state)
{
    fixture_t *fx = *state;
    s_put_filter_records (fx->store);
    assert_int_equal (tf_store_apply (fx->store, 0), 0); // rows read by SQL, not from the log
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.organization = strdup ("CNSA");
    filter.country = strdup ("CN");
    filter.date_from = strdup ("2019");
    filter.date_to = strdup ("2020");
    tf_store_cursor_t *cursor = tf_store_snapshot_open (fx->store, &filter);
    assert_non_null (cursor);
    free (filter.organization);
    free (filter.country);
    free (filter.date_from);
    free (filter.date_to);
    char ids[256];
    assert_int_equal (s_snapshot_ids (cursor, ids, sizeof ids), 2);
    assert_string_equal (ids, "change-4,change-5");
    tf_store_cursor_destroy (&cursor);
}

/*  Same searches while the records table is behind the log and cannot
    catch up (here: a transaction is open; in the service: a full disk).
    The table holds an older alphafold and a record deleted since: the
    snapshot must take both from the log. */
static void test_filters_from_the_log (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "alphafold", TECHFEED__SECTOR__SECTOR_AI, "2020-11-30", "US", "DeepMind", T0);
    s_put (fx->store, "gone", TECHFEED__SECTOR__SECTOR_SPACE, "2020-12-01", "CN", "CNSA", T0);
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    s_put_filter_records (fx->store);
    assert_int_equal (tf_store_delete (fx->store, "gone", false, 0, T0, NULL), 0);
    assert_int_equal (tf_store_unapplied (fx->store), 7);
    uint64_t head = s_state (fx->store).head_sequence;

    assert_int_equal (tf_store_begin (fx->store), 0);
    tf_store_cursor_t *cursor = tf_store_snapshot_open (fx->store, NULL);
    assert_non_null (cursor);
    assert_int_equal (tf_store_cursor_sequence (cursor), head);
    tf_store_cursor_destroy (&cursor);
    s_check_filters (fx);
    assert_int_equal (tf_store_unapplied (fx->store), 7); // nothing was applied
    assert_int_equal (tf_store_rollback (fx->store), 0);
}

static void test_trim (void **state)
{
    fixture_t *fx = *state;
    for (int i = 1; i <= 10; i++) {
        char id[16];
        snprintf (id, sizeof id, "r%02d", i);
        s_put (fx->store, id, 1 + i % 3, "2020", "CN", "X", T0 + i * 1000);
    }
    assert_int_equal (tf_store_apply (fx->store, 0), 0);   // trimming keeps what is not applied
    assert_int_equal (tf_store_trim (fx->store, 0, 0), 0); // both bounds off
    assert_int_equal (s_state (fx->store).log_first_sequence, 1);

    assert_int_equal (tf_store_trim (fx->store, 3, 0), 0);
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.head_sequence, 10);
    assert_int_equal (st.log_first_sequence, 8);
    assert_int_equal (st.record_count, 10);

    int rc = 0;
    assert_null (tf_store_changes_open (fx->store, 6, NULL, &rc));
    assert_int_equal (rc, TF_STORE_TRIMMED);
    assert_null (tf_store_changes_open (fx->store, 0, NULL, &rc));
    assert_int_equal (rc, TF_STORE_TRIMMED);
    char seqs[64];
    assert_int_equal (s_change_seqs (fx->store, 7, NULL, seqs, sizeof seqs), 3);
    assert_string_equal (seqs, "8,9,10");

    //  By age: changes before T0+9000 go
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 9000), 0);
    assert_int_equal (s_state (fx->store).log_first_sequence, 9);

    //  Trimming does not touch the records: a snapshot still has them all
    char ids[256];
    assert_int_equal (s_snapshot_filtered (fx->store, NULL, ids, sizeof ids), 10);
}

static void test_trim_all_keeps_sequence (void **state)
{
    fixture_t *fx = *state;
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf (id, sizeof id, "r%d", i);
        s_put (fx->store, id, TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    }
    assert_int_equal (tf_store_apply (fx->store, 0), 0);
    assert_int_equal (tf_store_trim (fx->store, 0, T0 + 1), 0);
    tf_store_state_t st = s_state (fx->store);
    assert_int_equal (st.head_sequence, 5);
    assert_int_equal (st.log_first_sequence, 6);
    assert_int_equal (st.sector_heads[TECHFEED__SECTOR__SECTOR_AI], 5);
    assert_int_equal (s_sql_int (fx->path, "SELECT count(*) FROM changes"), 0);

    char seqs[64];
    assert_int_equal (s_change_seqs (fx->store, 5, NULL, seqs, sizeof seqs), 0); // at head: fine
    int rc = 0;
    assert_null (tf_store_changes_open (fx->store, 4, NULL, &rc));
    assert_int_equal (rc, TF_STORE_TRIMMED);

    s_reopen (fx);
    tf_change_t change =
        s_put (fx->store, "r6", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    assert_int_equal (change.sequence, 6);
    assert_int_equal (change.sector_prev_sequence, 5);
    assert_int_equal (s_change_seqs (fx->store, 5, NULL, seqs, sizeof seqs), 1);
    assert_string_equal (seqs, "6");
}

static void test_reopen (void **state)
{
    fixture_t *fx = *state;
    char epoch[33];
    snprintf (epoch, sizeof epoch, "%s", tf_store_epoch (fx->store));
    s_put (fx->store, "a", TECHFEED__SECTOR__SECTOR_BIOTECH, "2020", "CN", "X", T0);
    s_put (fx->store, "b", TECHFEED__SECTOR__SECTOR_BIOTECH, "2020", "CN", "X", T0);
    assert_int_equal (tf_store_request_put (fx->store, "req", (const uint8_t *) "xy", 2, T0), 0);
    tf_store_state_t before = s_state (fx->store);

    s_reopen (fx);
    assert_string_equal (tf_store_epoch (fx->store), epoch);
    tf_store_state_t after = s_state (fx->store);
    assert_memory_equal (&before, &after, sizeof before);
    tf_change_t change =
        s_put (fx->store, "c", TECHFEED__SECTOR__SECTOR_BIOTECH, "2020", "CN", "X", T0);
    assert_int_equal (change.sequence, 3);
    assert_int_equal (change.sector_prev_sequence, 2);
    uint8_t *reply;
    size_t size;
    assert_int_equal (tf_store_request_get (fx->store, "req", &reply, &size), 0);
    assert_int_equal (size, 2);
    free (reply);
}

/*  Descriptors this process has open (the directory's own included). */
static int s_open_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    assert_non_null (dir);
    int count = 0;
    for (struct dirent *entry; (entry = readdir (dir));)
        count += entry->d_name[0] != '.';
    closedir (dir);
    return count;
}

/*  A store keeps descriptors of its own (the WAL's, for writeback after
    the applier's batches): closing it gives every one back. */
static void test_reopen_keeps_no_descriptor (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "a", TECHFEED__SECTOR__SECTOR_BIOTECH, "2020", "CN", "X", T0);
    char err[256];
    assert_int_equal (tf_store_apply_from (fx->store, 0, err, sizeof err), 0);
    int before = s_open_fds ();
    for (int i = 0; i < 20; i++) {
        s_reopen (fx);
        s_put (fx->store, "a", TECHFEED__SECTOR__SECTOR_BIOTECH, "2020", "CN", "X", T0);
        assert_int_equal (tf_store_apply_from (fx->store, 0, err, sizeof err), 0);
    }
    assert_int_equal (s_open_fds (), before);
    assert_int_equal (s_state (fx->store).head_sequence, 21);
}

static void test_new_epoch (void **state)
{
    fixture_t *fx = *state;
    char old[33];
    snprintf (old, sizeof old, "%s", tf_store_epoch (fx->store));
    s_put (fx->store, "a", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);

    assert_int_equal (tf_store_begin (fx->store), 0);
    assert_int_equal (tf_store_new_epoch (fx->store), TF_STORE_ERROR); // not inside one
    assert_int_equal (tf_store_rollback (fx->store), 0);
    assert_string_equal (tf_store_epoch (fx->store), old);

    assert_int_equal (tf_store_new_epoch (fx->store), 0);
    char epoch[33];
    snprintf (epoch, sizeof epoch, "%s", tf_store_epoch (fx->store));
    assert_string_not_equal (epoch, old);
    assert_int_equal (strspn (epoch, "0123456789abcdef"), 32);
    assert_string_equal (s_state (fx->store).epoch, epoch);

    //  Events carry it; the sequence goes on; it survives a reopen
    int rc;
    tf_store_cursor_t *cursor = tf_store_changes_open (fx->store, 0, NULL, &rc);
    assert_non_null (cursor);
    Techfeed__ChangeEvent *event;
    assert_int_equal (tf_store_cursor_next_change (cursor, &event), 1);
    assert_string_equal (event->epoch, epoch);
    techfeed__change_event__free_unpacked (event, NULL);
    tf_store_cursor_destroy (&cursor);
    s_reopen (fx);
    assert_string_equal (tf_store_epoch (fx->store), epoch);
    assert_int_equal (s_state (fx->store).head_sequence, 1);
}

static void test_requests (void **state)
{
    fixture_t *fx = *state;
    uint8_t *reply = (uint8_t *) "x";
    size_t size = 7;
    assert_int_equal (tf_store_request_get (fx->store, "r1", &reply, &size), TF_STORE_NOT_FOUND);
    assert_null (reply);
    assert_int_equal (size, 0);

    const uint8_t bytes[] = { 0x08, 0x01, 0x00, 0xff, 0x12 };
    assert_int_equal (tf_store_request_put (fx->store, "r1", bytes, sizeof bytes, T0), 0);
    assert_int_equal (tf_store_begin (fx->store), 0);
    assert_int_equal (tf_store_request_put (fx->store, "r2", NULL, 0, T0 + 100), 0);
    assert_int_equal (tf_store_request_put (fx->store, "r3", bytes, 1, T0 + 100), 0);
    assert_int_equal (tf_store_commit (fx->store), 0);

    assert_int_equal (tf_store_request_get (fx->store, "r1", &reply, &size), 0);
    assert_int_equal (size, sizeof bytes);
    assert_memory_equal (reply, bytes, sizeof bytes);
    free (reply);
    assert_int_equal (tf_store_request_get (fx->store, "r2", &reply, &size), 0);
    assert_int_equal (size, 0);
    assert_non_null (reply);
    free (reply);

    assert_int_equal (tf_store_request_expire (fx->store, T0 + 100, 0), 0);
    assert_int_equal (tf_store_request_get (fx->store, "r1", &reply, &size), TF_STORE_NOT_FOUND);
    assert_int_equal (tf_store_request_get (fx->store, "r2", &reply, &size), 0);
    free (reply);
    assert_int_equal (tf_store_request_get (fx->store, "r3", &reply, &size), 0);
    free (reply);
}

static void test_refuse_foreign (void **state)
{
    fixture_t *fx = *state;
    char other[160];
    snprintf (other, sizeof other, "%s/other.db", fx->dir);

    //  Garbage bytes, long and short
    char garbage[4096];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char) (i * 131 + 7);
    s_write_file (other, garbage, sizeof garbage);
    s_assert_refused (other, "not a techfeed database");
    //  ... and left as it was (refused, never repaired)
    char back[sizeof garbage + 1];
    FILE *file = fopen (other, "rb");
    assert_non_null (file);
    assert_int_equal (fread (back, 1, sizeof back, file), sizeof garbage);
    fclose (file);
    assert_memory_equal (back, garbage, sizeof garbage);
    s_write_file (other, "hello, world\n", 13);
    s_assert_refused (other, "not a techfeed database");
    tf_test_remove_db (other);

    //  Another program's SQLite database
    s_sql_exec (other, "CREATE TABLE users (name TEXT)");
    s_assert_refused (other, "not a techfeed database");
    s_sql_exec (other, "PRAGMA application_id = 42");
    s_assert_refused (other, "application_id");
    tf_test_remove_db (other);

    //  A techfeed database from a newer program
    tf_store_destroy (&fx->store);
    s_sql_exec (fx->path, "PRAGMA user_version = 99");
    s_assert_refused (fx->path, "newer");
    char sql[64];
    snprintf (sql, sizeof sql, "PRAGMA user_version = %d", tf_store_schema_version ());
    s_sql_exec (fx->path, sql);
    s_reopen (fx);
}

/*  Makes a checkpointed database with enough rows to span many pages. */
static long s_fill_and_close (fixture_t *fx)
{
    assert_int_equal (tf_store_begin (fx->store), 0);
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf (id, sizeof id, "record-%04d", i);
        s_put (fx->store, id, 1 + i % 10, "2020-01-01", "CN", "Some Organisation", T0);
    }
    assert_int_equal (tf_store_commit (fx->store), 0);
    tf_store_destroy (&fx->store); // last connection: checkpoints and removes the WAL
    FILE *file = fopen (fx->path, "rb");
    assert_non_null (file);
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fclose (file);
    assert_true (size > 64 * 1024);
    return size;
}

static void test_refuse_truncated (void **state)
{
    fixture_t *fx = *state;
    long size = s_fill_and_close (fx);
    assert_int_equal (truncate (fx->path, size / 2), 0);
    s_assert_refused (fx->path, "corrupt");
}

static void test_refuse_bit_flips (void **state)
{
    fixture_t *fx = *state;
    long size = s_fill_and_close (fx);
    //  Flip every byte of the second page's b-tree header area and a few
    //  bytes in the middle of the file
    FILE *file = fopen (fx->path, "r+b");
    assert_non_null (file);
    long page = s_sql_int (fx->path, "PRAGMA page_size");
    long offsets[] = { page, page + 1, page + 3, page + 5, size / 2, size / 2 + 1 };
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        fseek (file, offsets[i], SEEK_SET);
        int c = fgetc (file);
        fseek (file, offsets[i], SEEK_SET);
        fputc (c ^ 0x5a, file);
    }
    fclose (file);
    s_assert_refused (fx->path, "corrupt");
}

/*  Disk full, simulated with a file size limit: the write fails with a
    clear error, nothing of it is stored, and the store works afterwards. */
static void test_disk_full (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "kept", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    tf_store_state_t before = s_state (fx->store);

    tf_test_fsize_t fsize;
    if (!tf_test_fsize_limit (&fsize, 1 << 20))
        skip ();

    Techfeed__Milestone *m = s_record ("big", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X");
    free (m->summary);
    m->summary = calloc (1, 3001);
    assert_non_null (m->summary);
    memset (m->summary, 'x', 3000);
    int failure = tf_store_begin (fx->store);
    for (int i = 0; i < 2000 && !failure; i++) {
        char id[32];
        snprintf (id, sizeof id, "big-%04d", i);
        free (m->id);
        m->id = s_dup (id);
        failure = tf_store_put (fx->store, m, false, 0, T0, NULL);
    }
    if (!failure)
        failure = tf_store_commit (fx->store);
    char errstr[1024];
    snprintf (errstr, sizeof errstr, "%s", tf_store_errstr (fx->store));
    assert_int_equal (tf_store_rollback (fx->store), 0);
    tf_test_fsize_restore (&fsize);
    s_free (m);

    print_message ("disk full: %d %s\n", failure, errstr);
    assert_int_equal (failure, TF_STORE_FULL);
    tf_store_state_t after = s_state (fx->store);
    after.index_bytes = before.index_bytes; // the id table may keep the slots it grew
    assert_memory_equal (&before, &after, sizeof before);
    char ids[64];
    assert_int_equal (s_snapshot_filtered (fx->store, NULL, ids, sizeof ids), 1);

    //  Space again: writes go on from the same sequence
    tf_change_t change =
        s_put (fx->store, "next", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    assert_int_equal (change.sequence, 2);
    s_reopen (fx);
    assert_int_equal (s_state (fx->store).record_count, 2);
}

/*  WAL space written ahead: the file is that long and the store works on;
    without room for it, TF_STORE_FULL naming the file, and the WAL as
    long as it was. */
static void test_reserve_wal (void **state)
{
    fixture_t *fx = *state;
    s_put (fx->store, "first", TECHFEED__SECTOR__SECTOR_AI, "2020", "CN", "X", T0);
    char wal[600];
    snprintf (wal, sizeof wal, "%s-wal", fx->path);
    long long before = tf_test_file_size (wal);
    assert_true (before > 0);

    tf_test_fsize_t fsize;
    if (tf_test_fsize_limit (&fsize, (long) before + (256 << 10))) {
        int rc = tf_store_reserve_wal (fx->store, 4 << 20);
        tf_test_fsize_restore (&fsize);
        print_message ("reserve past the limit: %d %s\n", rc, tf_store_errstr (fx->store));
        assert_int_equal (rc, TF_STORE_FULL);
        assert_non_null (strstr (tf_store_errstr (fx->store), wal));
        assert_int_equal (tf_test_file_size (wal), before);
    } else
        print_message ("RLIMIT_FSIZE is set lower already: the refusal of a reserve past the "
                       "limit is not checked here\n");
    assert_int_equal (tf_store_reserve_wal (fx->store, 4 << 20), 0);
    assert_int_equal (tf_test_file_size (wal), 4 << 20);
    s_put (fx->store, "second", TECHFEED__SECTOR__SECTOR_AI, "2021", "CN", "X", T0);
    assert_int_equal (tf_test_file_size (wal), 4 << 20);
    assert_int_equal (s_state (fx->store).record_count, 2);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_create, setup, teardown),
        cmocka_unit_test_setup_teardown (test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown (test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown (test_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown (test_immutable_sector, setup, teardown),
        cmocka_unit_test_setup_teardown (test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown (test_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown (test_changes_since, setup, teardown),
        cmocka_unit_test_setup_teardown (test_snapshot_consistency, setup, teardown),
        cmocka_unit_test_setup_teardown (test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown (test_index_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_filter_outlived_by_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown (test_filters_from_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown (test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown (test_trim_all_keeps_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown (test_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reopen_keeps_no_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown (test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuse_foreign, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuse_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown (test_refuse_bit_flips, setup, teardown),
        cmocka_unit_test_setup_teardown (test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reserve_wal, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
