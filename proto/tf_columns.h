/*  tf_columns — the `records` table: a milestone as SQL columns.

    The service's database (storage/tf_store.c) and a client's mirror
    (clients/lib/tf_mirror.c) store records in the same table, so other
    programs query either with the same plain SQL:

    records — one row per milestone; `body` is the truth, the other
    columns copy it
    ----------------------------------------------------------------------
    id            TEXT     PRIMARY KEY, natural key
    sector        INTEGER  Techfeed__Sector, immutable     (index)
    title         TEXT
    summary       TEXT
    organizations TEXT     JSON array of strings
    country       TEXT     ISO 3166-1 alpha-2
    date          TEXT     YYYY, YYYY-MM or YYYY-MM-DD     (index)
    status        INTEGER  Techfeed__MilestoneStatus or NULL
    metrics       TEXT     JSON array of {"name","value","unit"}
    sources       TEXT     JSON array of strings
    tags          TEXT     JSON array of strings
    revision      INTEGER  1 on create, +1 per put
    updated_ms    INTEGER  Unix ms of the last put
    body          BLOB     packed Techfeed__Milestone, revision and
                           updated_at_ms included

    The table is part of the service's schema migration 1: changing it
    means a new migration in tf_store.c and in tf_mirror.c.
*/
#ifndef TF_COLUMNS_H_INCLUDED
#define TF_COLUMNS_H_INCLUDED

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "techfeed.pb-c.h"

/*  CREATE TABLE records and its indexes (run inside a transaction). */
#define TF_COLUMNS_CREATE                                                                          \
    "CREATE TABLE records ("                                                                       \
    "  id TEXT PRIMARY KEY NOT NULL,"                                                              \
    "  sector INTEGER NOT NULL,"                                                                   \
    "  title TEXT,"                                                                                \
    "  summary TEXT,"                                                                              \
    "  organizations TEXT NOT NULL,"                                                               \
    "  country TEXT,"                                                                              \
    "  date TEXT,"                                                                                 \
    "  status INTEGER,"                                                                            \
    "  metrics TEXT NOT NULL,"                                                                     \
    "  sources TEXT NOT NULL,"                                                                     \
    "  tags TEXT NOT NULL,"                                                                        \
    "  revision INTEGER NOT NULL,"                                                                 \
    "  updated_ms INTEGER NOT NULL,"                                                               \
    "  body BLOB NOT NULL) STRICT;"                                                                \
    "CREATE INDEX records_sector ON records (sector);"                                             \
    "CREATE INDEX records_date ON records (date);"

/*  Insert or replace one row; parameters ?1..?14 in column order, bound
    by tf_columns_bind. */
#define TF_COLUMNS_UPSERT TF_COLUMNS_UPSERT_INTO " sector = excluded.sector," TF_COLUMNS_UPSERT_SET

/*  The same for a row whose sector stays what it is (a sector changes only
    through a delete): an update that writes the sector column moves the
    row's records_sector entry even when the value is the same: about 1.3
    of 8.7 µs per row when 100k rows of about 1 KiB were updated in batches of
    512 (SQLite 3.40). */
#define TF_COLUMNS_UPSERT_SAME_SECTOR TF_COLUMNS_UPSERT_INTO TF_COLUMNS_UPSERT_SET

#define TF_COLUMNS_UPSERT_INTO                                                                     \
    "INSERT INTO records (id, sector, title, summary, organizations, country,"                     \
    " date, status, metrics, sources, tags, revision, updated_ms, body)"                           \
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"                        \
    " ON CONFLICT (id) DO UPDATE SET"
#define TF_COLUMNS_UPSERT_SET                                                                      \
    " title = excluded.title, summary = excluded.summary,"                                         \
    " organizations = excluded.organizations, country = excluded.country,"                         \
    " date = excluded.date, status = excluded.status,"                                             \
    " metrics = excluded.metrics, sources = excluded.sources,"                                     \
    " tags = excluded.tags, revision = excluded.revision,"                                         \
    " updated_ms = excluded.updated_ms, body = excluded.body"

/*  uint64 <-> SQLite INTEGER, by bit pattern (sequences, revisions and
    digests are unsigned; SQLite's integers are signed). */
static inline int64_t tf_columns_i64 (uint64_t value)
{
    int64_t out;
    memcpy (&out, &value, sizeof out);
    return out;
}

static inline uint64_t tf_columns_u64 (int64_t value)
{
    uint64_t out;
    memcpy (&out, &value, sizeof out);
    return out;
}

/*  A record's list columns as JSON text (malloc'd), made apart from the
    binding so that work can happen outside a write transaction. */
typedef struct {
    char *organizations, *metrics, *sources, *tags;
} tf_columns_json_t;

/*  0, or -1 (nothing kept) when a list cannot be JSON (a string not UTF-8,
    a value not finite). */
int tf_columns_json (const Techfeed__Milestone *record, tf_columns_json_t *json);
void tf_columns_json_free (tf_columns_json_t *json);
/*  tf_columns_bind with the JSON made beforehand, borrowed (like `body`)
    until the statement is reset. */
int tf_columns_bind_json (sqlite3_stmt *stmt, const Techfeed__Milestone *record,
                          const tf_columns_json_t *json, const uint8_t *body, size_t size);

/*  Binds `record` (revision and updated_at_ms as stored) and its packed
    form `body` (borrowed until the statement is reset) to a statement of
    TF_COLUMNS_UPSERT. 0, or -1 when a list column cannot be JSON (a
    string not UTF-8, a value not finite) or SQLite refuses a value. */
int tf_columns_bind (sqlite3_stmt *stmt, const Techfeed__Milestone *record, const uint8_t *body,
                     size_t size);

#endif
