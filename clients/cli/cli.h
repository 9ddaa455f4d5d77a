/*  The techfeed CLI's shared declarations: parsed options, the commands,
    and the output helpers every command uses (JSON vs terminal form,
    `FILE:LINE: /field: message` errors).
*/
#ifndef CLI_H_INCLUDED
#define CLI_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#include "techfeed.h"
#include "tf_json.h"
#include "tf_wire.h"

/*  Exit status for "asked for something that is not there" (get, delete
    of a missing id), as grep uses 1 for "no match". */
#define CLI_NOT_FOUND 1

/*  Everything the command line and the environment said. */
typedef struct {
    const char *command; /* subcommand name */
    char **args;         /* its positional arguments */
    int nargs;           /* how many */
    char ingest[256];    /* endpoints, resolved */
    char events[256];
    char sync[256];
    int timeout_ms;                          /* per try */
    size_t max_frame;                        /* largest request put sends, bytes */
    bool json;                               /* NDJSON output (--json or stdout not a terminal) */
    bool pretty;                             /* stdout is a terminal and no --json */
    bool atomic;                             /* put --atomic */
    bool has_expect;                         /* --expect-revision given */
    uint64_t expect;                         /* its value */
    Techfeed__Sector sectors[TF_SECTOR_MAX]; /* --sector, repeated */
    size_t n_sectors;
    const char *org;        /* list --org */
    const char *country;    /* list --country */
    const char *since;      /* list --since */
    const char *until;      /* list --until */
    long count;             /* watch --count, 0 = forever */
    const char *server_key; /* CURVE: the service's public key or certificate file; NULL: plain */
    const char *key;        /* CURVE: this client's certificate; NULL: a fresh key pair */
    const char *db;         /* mirror --db */
    bool quiet;             /* mirror --quiet */
    bool status_only;       /* mirror --status */
    const char *dir;        /* keygen --dir */
} cli_t;

/*  Commands: each returns the process exit status. */
int cli_put (cli_t *cli);
int cli_delete (cli_t *cli);
int cli_get (cli_t *cli);
int cli_list (cli_t *cli);
int cli_status (cli_t *cli);
int cli_watch (cli_t *cli);
int cli_mirror (cli_t *cli);
int cli_health (cli_t *cli);
int cli_keygen (cli_t *cli);

/*  Prints "techfeed: " + message on stderr. */
void cli_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
/*  `FILE:LINE: /field: message` on stderr (field may be "" or NULL). */
void cli_report (const char *file, size_t line, const char *field, const char *message);

/*  Writes `value` as one NDJSON line (compact) or, with pretty, indented;
    steals the reference. */
void cli_print_json (cli_t *cli, json_t *value);

/*  Sector slug or "?". */
const char *cli_slug (int sector);
/*  "HH:MM:SS" of now, local time, into out (9 bytes). */
void cli_clock (char out[9]);
/*  Terminal width, 80 when unknown. */
int cli_columns (void);
/*  Prints `text` in at most `width` display columns (UTF-8 aware, "…" when
    cut). */
void cli_print_cut (FILE *out, const char *text, int width);

/*  Table rows for records on a terminal: date, sector, id, title. Sorts
    `records` by date then id and prints them aligned. */
void cli_print_table (const Techfeed__Milestone *const *records, size_t n);

/*  The view notices every view command prints on stderr: resync, lost,
    recovered (nothing for other events). */
void cli_view_notice (tf_view_t *view, tf_view_event_t what, const char *id);

/*  Exit status for a service error code on a request as a whole. */
int cli_exit_for_code (int code);

/*  A handle could not be made for `endpoint`, the value of `setting`
    ("--sync (TECHFEED_SYNC)"): says so, returns EX_CONFIG. */
int cli_bad_endpoint (const char *setting, const char *endpoint);

/*  tf_*_set_curve failed with `errstr`: says so naming the setting that
    is wrong, --server-key or --key; returns EX_CONFIG. */
int cli_bad_curve (const char *errstr);

#endif
