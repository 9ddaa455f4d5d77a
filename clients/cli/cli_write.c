/*  techfeed put and techfeed delete.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tf_json.h"
#include "tf_reader.h"
#include "tf_validate.h"

#define CLI_BATCH 500       /* records per request */
#define CLI_ATOMIC_MAX 1000 /* one request's limit (PROTOCOL.md §5) */
/*  A request's bytes over its records: its own fields (a request id of 64
    bytes at most), and each operation's kind, expected revision, framing. */
#define CLI_REQUEST_FIELDS 128
#define CLI_OP_FIELDS 32
#define CLI_INPUT_MAX (1024u << 20) /* biggest input file read, bytes */

/*  A record ready to send and the line it came from. */
typedef struct {
    Techfeed__Milestone *record; /* owned */
    size_t line;                 /* where it starts in the input */
    size_t bytes;                /* its operation's share of a request */
} s_item_t;

/*  A record refused before sending, reported once the results of the
    records before it are out, so that output follows the input's order. */
typedef struct {
    size_t line;
    char *id, *code, *field, *message; /* owned */
} s_early_t;

typedef struct {
    s_early_t *items;
    size_t count, cap;
    size_t next; /* first not yet reported */
} s_earlies_t;

/*  A writer with the settings, or NULL with *status set. */
static tf_writer_t *s_writer (cli_t *cli, int *status)
{
    tf_writer_t *writer = tf_writer_new (cli->ingest);
    if (!writer) {
        *status = cli_bad_endpoint ("--ingest (TECHFEED_INGEST)", cli->ingest);
        return NULL;
    }
    tf_writer_set_timeout (writer, cli->timeout_ms);
    tf_writer_set_max_frame (writer, cli->max_frame);
    if (cli->server_key && tf_writer_set_curve (writer, cli->server_key, cli->key) != 0) {
        *status = cli_bad_curve (tf_writer_errstr (writer));
        tf_writer_destroy (&writer);
    }
    return writer;
}

/*  Reads all of `path` ("-" = stdin) into a new NUL-terminated buffer.
    0, or -1 with errno set. */
static int s_slurp (const char *path, char **data, size_t *size)
{
    FILE *file = strcmp (path, "-") == 0 ? stdin : fopen (path, "rb");
    if (!file)
        return -1;
    size_t cap = 64 * 1024, len = 0;
    char *buf = (char *) malloc (cap);
    if (!buf)
        abort ();
    size_t n;
    while ((n = fread (buf + len, 1, cap - len - 1, file)) > 0) {
        len += n;
        if (len + 1 == cap) {
            if (cap >= CLI_INPUT_MAX) {
                errno = EFBIG;
                break;
            }
            cap *= 2;
            buf = (char *) realloc (buf, cap);
            if (!buf)
                abort ();
        }
    }
    int failed = ferror (file) || errno == EFBIG;
    int saved = errno;
    if (file != stdin)
        fclose (file);
    if (failed) {
        free (buf);
        errno = saved ? saved : EIO;
        return -1;
    }
    buf[len] = 0;
    *data = buf;
    *size = len;
    return 0;
}

/*  With --json, one rejected record's NDJSON result on stdout. */
static void s_rejected_json (cli_t *cli, size_t line, const char *id, const char *code,
                             const char *field, const char *message)
{
    if (!cli->json)
        return;
    json_t *out = json_object ();
    json_object_set_new (out, "id", id ? json_string (id) : json_null ());
    json_object_set_new (out, "ok", json_false ());
    json_object_set_new (out, "code", json_string (code));
    json_object_set_new (out, "field", json_string (field ? field : ""));
    json_object_set_new (out, "message", json_string (message));
    json_object_set_new (out, "line", json_integer ((json_int_t) line));
    cli_print_json (cli, out);
}

/*  One rejected record: the `FILE:LINE: /field: message` line on stderr,
    and with --json an NDJSON result on stdout. */
static void s_rejected (cli_t *cli, const char *name, size_t line, const char *id, const char *code,
                        const char *field, const char *message)
{
    cli_report (name, line, field, message);
    s_rejected_json (cli, line, id, code, field, message);
}

/*  One stored record (or one deleted: verb "deleted"). */
static void s_stored (cli_t *cli, const char *verb, const tf_result_t *r, size_t line,
                      bool replayed)
{
    if (cli->json) {
        json_t *out = json_object ();
        json_object_set_new (out, "id", json_string (r->id));
        json_object_set_new (out, "ok", json_true ());
        json_object_set_new (out, "revision", json_integer ((json_int_t) r->revision));
        json_object_set_new (out, "sequence", json_integer ((json_int_t) r->sequence));
        if (line)
            json_object_set_new (out, "line", json_integer ((json_int_t) line));
        if (replayed)
            json_object_set_new (out, "replayed", json_true ());
        cli_print_json (cli, out);
    } else
        printf ("%s  %s  rev %" PRIu64 "  seq %" PRIu64 "%s\n", verb, r->id, r->revision,
                r->sequence, replayed ? "  (replayed)" : "");
}

/*  Message of a service-side rejection, with its code. */
static void s_result_message (const tf_result_t *r, char *out, size_t outlen)
{
    if (r->message[0])
        snprintf (out, outlen, "%s (%s)", r->message, tf_error_name (r->code));
    else if (r->code == TECHFEED__ERROR_CODE__CONFLICT)
        snprintf (out, outlen, "stored revision is %" PRIu64 " (CONFLICT)", r->current_revision);
    else
        snprintf (out, outlen, "%s", tf_error_name (r->code));
}

static char *s_strdup (const char *text)
{
    char *copy = strdup (text ? text : "");
    if (!copy)
        abort ();
    return copy;
}

static void s_defer (s_earlies_t *earlies, size_t line, const char *id, const char *code,
                     const char *field, const char *message)
{
    if (earlies->count == earlies->cap) {
        earlies->cap = earlies->cap ? earlies->cap * 2 : 16;
        earlies->items = (s_early_t *) realloc (earlies->items, earlies->cap * sizeof (s_early_t));
        if (!earlies->items)
            abort ();
    }
    earlies->items[earlies->count++] =
        (s_early_t){ line, id ? s_strdup (id) : NULL, s_strdup (code), s_strdup (field),
                     s_strdup (message) };
}

/*  Reports the deferred refusals of lines before `line` (SIZE_MAX: all). */
static void s_report_before (cli_t *cli, const char *name, s_earlies_t *earlies, size_t line)
{
    for (; earlies->next < earlies->count && earlies->items[earlies->next].line < line;
         earlies->next++) {
        s_early_t *e = &earlies->items[earlies->next];
        s_rejected (cli, name, e->line, e->id, e->code, e->field, e->message);
    }
}

static void s_earlies_free (s_earlies_t *earlies)
{
    for (size_t i = 0; i < earlies->count; i++) {
        free (earlies->items[i].id);
        free (earlies->items[i].code);
        free (earlies->items[i].field);
        free (earlies->items[i].message);
    }
    free (earlies->items);
}

/*  Decodes and validates one JSON value, and checks that a request can
    carry it: its operation's bytes into *bytes. The record, or NULL when
    rejected (deferred into `earlies`). */
static Techfeed__Milestone *s_record (const cli_t *cli, s_earlies_t *earlies, size_t line,
                                      json_t *value, size_t *bytes)
{
    tf_verror_t verr;
    const char *id = json_string_value (json_object_get (value, "id"));
    if (!json_is_object (value)) {
        s_defer (earlies, line, NULL, "INVALID", "", "a record is a JSON object");
        return NULL;
    }
    Techfeed__Milestone *m = tf_json_to_milestone (value, &verr);
    if (m && tf_validate_milestone (m, &verr) != 0) {
        techfeed__milestone__free_unpacked (m, NULL);
        m = NULL;
    }
    if (!m) {
        s_defer (earlies, line, id, "INVALID", verr.field, verr.message);
        return NULL;
    }
    *bytes = techfeed__milestone__get_packed_size (m) + CLI_OP_FIELDS;
    if (*bytes + CLI_REQUEST_FIELDS > cli->max_frame) {
        char message[200];
        snprintf (message, sizeof message,
                  "the record makes a request of %zu bytes, over --max-frame (%zu)",
                  *bytes + CLI_REQUEST_FIELDS, cli->max_frame);
        s_defer (earlies, line, id, "TOO_LARGE", "", message);
        techfeed__milestone__free_unpacked (m, NULL);
        return NULL;
    }
    return m;
}

/*  How many of items[0..n) the next request takes: at most `batch`, and
    as many as fit in cli->max_frame bytes (each fits alone: s_record). */
static size_t s_request_size (const cli_t *cli, const s_item_t *items, size_t n, size_t batch)
{
    size_t bytes = CLI_REQUEST_FIELDS, k = 0;
    while (k < n && k < batch) {
        bytes += items[k].bytes;
        if (k > 0 && bytes > cli->max_frame)
            break;
        k++;
    }
    return k;
}

/*  Sends items[0..n) in requests of `batch` records at most, each within
    cli->max_frame bytes; prints a result per record.
    Counts into *stored and *rejected. 0, or EX_UNAVAILABLE when
    the service did not answer. */
static int s_send (cli_t *cli, const char *name, s_item_t *items, size_t n, size_t batch,
                   s_earlies_t *earlies, size_t *stored, size_t *rejected)
{
    int status = 0;
    tf_writer_t *writer = s_writer (cli, &status);
    if (!writer)
        return status;
    tf_op_t *ops = (tf_op_t *) calloc (batch, sizeof *ops);
    tf_result_t *results = (tf_result_t *) calloc (batch, sizeof *results);
    if (!ops || !results)
        abort ();
    for (size_t i = 0, k; i < n && status == 0; i += k) {
        k = cli->atomic ? n - i : s_request_size (cli, items + i, n - i, batch);
        for (size_t j = 0; j < k; j++)
            ops[j] = (tf_op_t){ .record = items[i + j].record,
                                .has_expected_revision = cli->has_expect,
                                .expected_revision = cli->expect };
        if (tf_writer_send (writer, ops, k, cli->atomic, results) != 0) {
            cli_error ("%s", tf_writer_errstr (writer));
            cli_error ("%zu record(s) from line %zu on may not be stored", n - i, items[i].line);
            status = EX_UNAVAILABLE;
            break;
        }
        //  A refusal of the request as a whole (UNAUTHORIZED, STORAGE_FULL...):
        //  said once; the next requests would get it too, so none is sent
        if (tf_writer_errstr (writer)[0]) {
            s_report_before (cli, name, earlies, items[i].line);
            cli_error ("%s", tf_writer_errstr (writer));
            cli_error ("%zu record(s) from line %zu on not stored", n - i, items[i].line);
            status = cli_exit_for_code (results[0].code);
            for (size_t j = 0; j < k; j++)
                s_rejected_json (cli, items[i + j].line, items[i + j].record->id,
                                 tf_error_name (results[j].code), "", results[j].message);
            *rejected += n - i;
            break;
        }
        for (size_t j = 0; j < k; j++) {
            const tf_result_t *r = &results[j];
            size_t line = items[i + j].line;
            s_report_before (cli, name, earlies, line);
            if (r->code == TECHFEED__ERROR_CODE__OK) {
                s_stored (cli, "ok", r, line, tf_writer_replayed (writer));
                (*stored)++;
            } else {
                char message[400];
                s_result_message (r, message, sizeof message);
                s_rejected (cli, name, line, items[i + j].record->id, tf_error_name (r->code),
                            r->field, message);
                (*rejected)++;
            }
        }
    }
    free (ops);
    free (results);
    tf_writer_destroy (&writer);
    fflush (stdout);
    return status;
}

int cli_put (cli_t *cli)
{
    const char *path = cli->nargs > 0 ? cli->args[0] : "-";
    const char *name = strcmp (path, "-") == 0 ? "<stdin>" : path;
    char *data;
    size_t size;
    if (s_slurp (path, &data, &size) != 0) {
        int err = errno;
        cli_error ("%s: %s", name, strerror (err));
        return err == ENOENT || err == EACCES || err == EISDIR ? EX_NOINPUT : EX_IOERR;
    }
    tf_reader_t *reader = tf_reader_new (data, size);
    s_item_t *items = NULL;
    size_t n = 0, cap = 0, stored = 0, rejected = 0;
    s_earlies_t earlies = { NULL, 0, 0, 0 };
    json_t *value;
    size_t line;
    char err[200];
    int rc;
    while ((rc = tf_reader_next (reader, &value, &line, err, sizeof err)) != 0) {
        if (rc < 0) {
            s_defer (&earlies, line, NULL, "MALFORMED", "", err);
            rejected++;
            continue;
        }
        size_t bytes = 0;
        Techfeed__Milestone *m = s_record (cli, &earlies, line, value, &bytes);
        json_decref (value);
        if (!m) {
            rejected++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            items = (s_item_t *) realloc (items, cap * sizeof *items);
            if (!items)
                abort ();
        }
        items[n++] = (s_item_t){ m, line, bytes };
    }
    tf_reader_destroy (&reader);
    free (data);

    int status = 0;
    bool sending = n > 0 && !(cli->has_expect && n + rejected != 1) &&
                   !(cli->atomic && (rejected > 0 || n > CLI_ATOMIC_MAX));
    if (!sending)
        s_report_before (cli, name, &earlies, SIZE_MAX);
    if (n + rejected == 0) {
        cli_error ("%s: no records", name);
        status = EX_DATAERR;
    } else if (cli->has_expect && n + rejected != 1) {
        cli_error ("--expect-revision takes exactly one record, %s has %zu", name, n + rejected);
        status = EX_USAGE;
    } else if (cli->atomic && rejected > 0) {
        cli_error ("nothing stored: --atomic and %zu record(s) rejected", rejected);
        status = EX_DATAERR;
    } else if (cli->atomic && n > CLI_ATOMIC_MAX) {
        cli_error ("--atomic takes at most %d records, %s has %zu", CLI_ATOMIC_MAX, name, n);
        status = EX_USAGE;
    } else if (n > 0)
        status =
            s_send (cli, name, items, n, cli->atomic ? n : CLI_BATCH, &earlies, &stored, &rejected);
    s_report_before (cli, name, &earlies, SIZE_MAX);
    if (rejected > 0) {
        if (!cli->json)
            cli_error ("%zu stored, %zu rejected", stored, rejected);
        if (status == 0)
            status = EX_DATAERR;
    }
    for (size_t i = 0; i < n; i++)
        techfeed__milestone__free_unpacked (items[i].record, NULL);
    free (items);
    s_earlies_free (&earlies);
    return status;
}

int cli_delete (cli_t *cli)
{
    const char *id = cli->args[0];
    if (!tf_valid_id (id)) {
        cli_error ("%s: not a valid id ([a-z0-9][a-z0-9._-]*, at most %d bytes)", id, TF_ID_MAX);
        return EX_DATAERR;
    }
    int status = 0;
    tf_writer_t *writer = s_writer (cli, &status);
    if (!writer)
        return status;
    tf_result_t r;
    if (tf_writer_delete (writer, id, cli->has_expect, cli->expect, &r) != 0) {
        cli_error ("%s", tf_writer_errstr (writer));
        status = EX_UNAVAILABLE;
    } else if (r.code == TECHFEED__ERROR_CODE__OK)
        s_stored (cli, "deleted", &r, 0, tf_writer_replayed (writer));
    else {
        char message[400];
        if (r.code == TECHFEED__ERROR_CODE__NOT_FOUND)
            snprintf (message, sizeof message, "not found");
        else
            s_result_message (&r, message, sizeof message);
        fprintf (stderr, "%s: %s\n", id, message);
        if (cli->json) {
            json_t *out = json_object ();
            json_object_set_new (out, "id", json_string (id));
            json_object_set_new (out, "ok", json_false ());
            json_object_set_new (out, "code", json_string (tf_error_name (r.code)));
            json_object_set_new (out, "message", json_string (r.message));
            if (r.code == TECHFEED__ERROR_CODE__CONFLICT)
                json_object_set_new (out, "current_revision",
                                     json_integer ((json_int_t) r.current_revision));
            cli_print_json (cli, out);
        }
        status = cli_exit_for_code (r.code);
    }
    tf_writer_destroy (&writer);
    return status;
}
