/*  techfeed — the command-line client: put, delete, get, list, watch,
    mirror, status, health, keygen. Options go before or after the
    command.

    Settings (endpoints, timeout, output, CURVE keys, sectors, the mirror's
    file...) come from a flag, else a TECHFEED_* variable, else the
    default; s_settings lists them once, for parsing, checking and
    --print-config. A setting's value that is not valid exits 78
    (EX_CONFIG) with a message naming the flag and the variable; 64
    (EX_USAGE) is for the command line itself (unknown command or option,
    missing arguments, a bad value of a command's own flag-only option).
*/
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "tf_validate.h"

/*  Long options. Each has a bit so a command can say which it takes. */
enum {
    OPT_SERVER = 1,
    OPT_INGEST,
    OPT_EVENTS,
    OPT_SYNC,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_SERVER_KEY,
    OPT_KEY,
    OPT_PRINT_CONFIG,
    OPT_HELP,
    OPT_VERSION,
    //  Options of some commands only
    OPT_SECTOR,
    OPT_DB,
    OPT_QUIET,
    OPT_DIR,
    OPT_MAX_FRAME,
    OPT_ATOMIC,
    OPT_EXPECT,
    OPT_ORG,
    OPT_COUNTRY,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_COUNT,
    OPT_STATUS,
    OPT_LAST = OPT_STATUS
};
#define BIT(opt) (1u << (opt))
#define GLOBAL_OPTS                                                                                \
    (BIT (OPT_SERVER) | BIT (OPT_INGEST) | BIT (OPT_EVENTS) | BIT (OPT_SYNC) | BIT (OPT_TIMEOUT) | \
     BIT (OPT_JSON) | BIT (OPT_SERVER_KEY) | BIT (OPT_KEY) | BIT (OPT_PRINT_CONFIG) |              \
     BIT (OPT_HELP) | BIT (OPT_VERSION))

/*  Indexed by OPT_ - 1. */
static const struct option s_options[] = {
    { "server", required_argument, NULL, OPT_SERVER },
    { "ingest", required_argument, NULL, OPT_INGEST },
    { "events", required_argument, NULL, OPT_EVENTS },
    { "sync", required_argument, NULL, OPT_SYNC },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "json", no_argument, NULL, OPT_JSON },
    { "server-key", required_argument, NULL, OPT_SERVER_KEY },
    { "key", required_argument, NULL, OPT_KEY },
    { "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { "sector", required_argument, NULL, OPT_SECTOR },
    { "db", required_argument, NULL, OPT_DB },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "dir", required_argument, NULL, OPT_DIR },
    { "max-frame", required_argument, NULL, OPT_MAX_FRAME },
    { "atomic", no_argument, NULL, OPT_ATOMIC },
    { "expect-revision", required_argument, NULL, OPT_EXPECT },
    { "org", required_argument, NULL, OPT_ORG },
    { "country", required_argument, NULL, OPT_COUNTRY },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "count", required_argument, NULL, OPT_COUNT },
    { "status", no_argument, NULL, OPT_STATUS },
    { NULL, 0, NULL, 0 },
};

/*  A setting: a flag and a variable. The mirror's file is
    TECHFEED_MIRROR_DB and keygen's directory TECHFEED_KEY_DIR, not
    TECHFEED_DB / TECHFEED_DIR: techfeed-ingestd reads TECHFEED_DB as its
    own database, and both programs may share an environment. */
typedef struct {
    int opt;         /* its OPT_ */
    const char *env; /* its TECHFEED_* variable */
} s_setting_t;

static const s_setting_t s_settings[] = {
    { OPT_SERVER, "TECHFEED_SERVER" },         { OPT_INGEST, "TECHFEED_INGEST" },
    { OPT_EVENTS, "TECHFEED_EVENTS" },         { OPT_SYNC, "TECHFEED_SYNC" },
    { OPT_TIMEOUT, "TECHFEED_TIMEOUT" },       { OPT_JSON, "TECHFEED_JSON" },
    { OPT_SERVER_KEY, "TECHFEED_SERVER_KEY" }, { OPT_KEY, "TECHFEED_KEY" },
    { OPT_SECTOR, "TECHFEED_SECTOR" },         { OPT_DB, "TECHFEED_MIRROR_DB" },
    { OPT_QUIET, "TECHFEED_QUIET" },           { OPT_DIR, "TECHFEED_KEY_DIR" },
    { OPT_MAX_FRAME, "TECHFEED_MAX_FRAME" },
};
#define SETTINGS (sizeof s_settings / sizeof s_settings[0])

/*  A command: name, what it does, its options, how many arguments. */
typedef struct {
    const char *name;
    int (*run) (cli_t *cli);
    unsigned options; /* BIT()s beyond the global ones */
    int min_args, max_args;
    const char *help; /* EXAMPLES first, then usage and options */
} s_command_t;

static const char s_help_put[] =
    "EXAMPLES\n"
    "  techfeed put milestones.ndjson         store every record of the file\n"
    "  techfeed put --atomic batch.json       all records or none\n"
    "  echo '{\"id\":\"x\",...}' | techfeed put   one record from stdin\n"
    "  techfeed put --expect-revision 3 a.json  only if the stored revision is still 3\n"
    "\n"
    "USAGE\n"
    "  techfeed put [OPTIONS] [FILE|-]\n"
    "\n"
    "Stores milestone records. FILE (default: stdin) holds one JSON object, a JSON\n"
    "array of objects, or NDJSON (one object per line). Every record is checked\n"
    "before anything is sent; errors are reported as FILE:LINE: /field: message.\n"
    "Prints one result per record: `ok  ID  rev N  seq S` on a terminal, NDJSON\n"
    "{\"id\",\"ok\",\"revision\",\"sequence\"|\"code\",\"field\",\"message\",\"line\"} otherwise.\n"
    "Records go in requests of at most 500 records and --max-frame bytes.\n"
    "\n"
    "OPTIONS\n"
    "  --atomic             store all records or none: one request (at most 1000)\n"
    "  --expect-revision N  store only if the stored revision is N (0: must not exist);\n"
    "                       the file must hold exactly one record\n"
    "\n"
    "EXIT STATUS\n"
    "  0 all stored, 65 a record was rejected, 66 no such file, 69 service unavailable\n";

static const char s_help_delete[] =
    "EXAMPLES\n"
    "  techfeed delete change-4-far-side-landing\n"
    "  techfeed delete change-4-far-side-landing --expect-revision 2\n"
    "\n"
    "USAGE\n"
    "  techfeed delete [OPTIONS] ID\n"
    "\n"
    "Deletes a record (subscribers see a delete event).\n"
    "\n"
    "OPTIONS\n"
    "  --expect-revision N  delete only if the stored revision is N\n"
    "\n"
    "EXIT STATUS\n"
    "  0 deleted, 1 not found, 65 conflict or bad id, 69 service unavailable\n";

static const char s_help_get[] =
    "EXAMPLES\n"
    "  techfeed get change-4-far-side-landing\n"
    "  techfeed get a b c --json | jq .title\n"
    "\n"
    "USAGE\n"
    "  techfeed get [OPTIONS] ID...\n"
    "\n"
    "Prints the records with these ids as JSON (indented on a terminal, one per\n"
    "line otherwise), in the order asked for; `ID: not found` on stderr for each\n"
    "missing one.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 all found, 1 some not found, 65 bad id, 69 service unavailable\n";

static const char s_help_list[] =
    "EXAMPLES\n"
    "  techfeed list\n"
    "  techfeed list --sector space --sector rail --since 2019 --until 2020-06\n"
    "  techfeed list --org CNSA --json > space.ndjson\n"
    "\n"
    "USAGE\n"
    "  techfeed list [OPTIONS]\n"
    "\n"
    "Lists the records that match, read from one consistent snapshot: a table\n"
    "(date, sector, id, title; by date) on a terminal, NDJSON (by id) otherwise.\n"
    "\n"
    "OPTIONS\n"
    "  --sector S      only sector S (repeatable, or space,rail; TECHFEED_SECTOR): ai\n"
    "                  telecom fintech energy space rail biotech quantum chips other\n"
    "  --org O         only records naming organization O (exact)\n"
    "  --country C     only country C (ISO 3166-1 alpha-2, e.g. CN)\n"
    "  --since DATE    date >= DATE (YYYY, YYYY-MM or YYYY-MM-DD, a prefix)\n"
    "  --until DATE    date <= DATE (a prefix: --until 2019 includes 2019-12-31)\n";

static const char s_help_watch[] =
    "EXAMPLES\n"
    "  techfeed watch\n"
    "  techfeed watch --sector space --sector ai\n"
    "  techfeed watch --json | jq -c 'select(.op == \"add\")'\n"
    "  techfeed watch --count 1 --json      wait for the next change, print it, exit\n"
    "\n"
    "USAGE\n"
    "  techfeed watch [OPTIONS]\n"
    "\n"
    "Prints the current records, then every change as it happens, until\n"
    "Ctrl-C. On a terminal: `17:42:18 + space ID \"title\" (rev 1)` (+ added,\n"
    "~ updated, - deleted). Otherwise NDJSON: {\"kind\":\"snapshot\",\"record\":{..}}\n"
    "per record, then {\"seq\",\"kind\":\"put\"|\"delete\",\"op\":\"add\"|\"update\"|\"delete\",\n"
    "\"id\",\"sector\",\"revision\",\"record\"} per change. Lost events are repaired from\n"
    "the service's log; resync, lost and recovered notices go to stderr.\n"
    "\n"
    "OPTIONS\n"
    "  --sector S   only sector S (repeatable, or space,rail; TECHFEED_SECTOR)\n"
    "  --count N    exit after N changes\n";

static const char s_help_mirror[] =
    "EXAMPLES\n"
    "  techfeed mirror --db mirror.db                all sectors, until Ctrl-C or SIGTERM\n"
    "  techfeed mirror --db trains.db --sector rail --sector energy\n"
    "  techfeed mirror --db mirror.db --status       epoch, position, records, digest\n"
    "  sqlite3 mirror.db 'SELECT date, title FROM records ORDER BY date'\n"
    "\n"
    "USAGE\n"
    "  techfeed mirror --db FILE [--sector S]... [--quiet]\n"
    "  techfeed mirror --db FILE --status [--sector S]...\n"
    "\n"
    "Keeps the records (of these sectors) current in the SQLite file FILE, made\n"
    "when missing, until SIGINT or SIGTERM (exit 0). Its `records` table has the\n"
    "service's columns (id, sector, title, summary, organizations, country, date,\n"
    "status, metrics, sources, tags, revision, updated_ms, body) for plain SQL; its\n"
    "`mirror` table the epoch and position P they are at, committed with each\n"
    "batch of changes. After a restart it catches up from P (a snapshot when the\n"
    "service's epoch changed or its log no longer reaches P; a snapshot replaces\n"
    "the records in one transaction). One line per batch on stderr:\n"
    "`17:42:18 catch-up: 500 changes, position 1500, 1200 records`.\n"
    "A file keeps the sectors it was made with: other --sector values are refused,\n"
    "with --status too.\n"
    "\n"
    "OPTIONS\n"
    "  --db FILE    the mirror file (TECHFEED_MIRROR_DB)\n"
    "  --sector S   only sector S (repeatable, or space,rail; TECHFEED_SECTOR)\n"
    "  --quiet      no line per batch, errors only (TECHFEED_QUIET)\n"
    "  --status     print the file's epoch, position, record count and digest\n"
    "               (PROTOCOL.md §10, computed from the file) and exit; compare\n"
    "               with `techfeed status` (with the same --sector)\n"
    "\n"
    "EXIT STATUS\n"
    "  0 stopped by a signal, or --status printed; 65 FILE is not a mirror file\n"
    "  or damaged; 66 --status: no such FILE; 73 FILE cannot be made; 74 a write\n"
    "  to FILE failed (it keeps its last batch: restart to resume); 78 FILE was\n"
    "  made for other sectors\n";

static const char s_help_health[] =
    "EXAMPLES\n"
    "  techfeed health                             the service on 127.0.0.1\n"
    "  techfeed --server ingestd --timeout 2000 health\n"
    "  HEALTHCHECK CMD [\"techfeed\", \"health\"]      in a Dockerfile (no curl needed)\n"
    "\n"
    "USAGE\n"
    "  techfeed health [OPTIONS]\n"
    "\n"
    "Asks the service for its status (SYNC_STATUS) once, waiting at most --timeout\n"
    "milliseconds. Exit 0 when it answers, with one line on stdout: the sync\n"
    "endpoint asked, the head sequence and the record count, on a terminal\n"
    "  healthy: tcp://127.0.0.1:5562, head 1503, 1200 records\n"
    "otherwise (or with --json) {\"healthy\":true,\"sync\",\"epoch\",\"head_sequence\",\n"
    "\"record_count\"}. When it does not, 69 with one line on stderr saying why.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 healthy, 69 no answer within the timeout, or an error answer\n";

static const char s_help_keygen[] =
    "EXAMPLES\n"
    "  techfeed keygen server --dir /etc/techfeed    the service's pair (--curve-secret)\n"
    "  techfeed keygen writer                        writer.key and writer.key_secret\n"
    "  cp writer.key /etc/techfeed/writers/          the service lets it write\n"
    "  techfeed --server-key server.key --key writer.key_secret put a.json\n"
    "\n"
    "USAGE\n"
    "  techfeed keygen NAME [--dir DIR]\n"
    "\n"
    "Makes a CURVE key pair as two CZMQ certificate files: DIR/NAME.key, public\n"
    "(mode 0644: for the service's --writers or --readers directory, or for\n"
    "clients' --server-key), and DIR/NAME.key_secret, secret (mode 0600: a\n"
    "client's --key, or the service's --curve-secret). Prints the public key\n"
    "(Z85) on stdout. Never overwrites a file.\n"
    "\n"
    "OPTIONS\n"
    "  --dir DIR    where the files go (TECHFEED_KEY_DIR, default .); made when\n"
    "               missing (mode 0700)\n"
    "\n"
    "EXIT STATUS\n"
    "  0 written, 64 NAME is not a plain file name ([A-Za-z0-9._-], not starting\n"
    "  with a dot), 73 a file exists or cannot be written\n";

static const char s_help_status[] =
    "EXAMPLES\n"
    "  techfeed status\n"
    "  techfeed status --json\n"
    "  techfeed status --sector space     count and digest of the space records\n"
    "\n"
    "USAGE\n"
    "  techfeed status [OPTIONS]\n"
    "\n"
    "The service's epoch, head sequence, record count, digest (PROTOCOL.md §10),\n"
    "oldest sequence in its log, per-sector heads and version. With --sector the\n"
    "count and digest are those of a snapshot of these sectors (what a view of\n"
    "them holds).\n"
    "\n"
    "OPTIONS\n"
    "  --sector S   only sector S (repeatable, or space,rail; TECHFEED_SECTOR)\n";

static const char s_help_help[] =
    "EXAMPLES\n"
    "  techfeed help                  the commands, the settings, the exit statuses\n"
    "  techfeed help mirror           one command's examples, usage and options\n"
    "  techfeed mirror --help         the same\n"
    "\n"
    "USAGE\n"
    "  techfeed help [COMMAND]\n"
    "\n"
    "Prints the help on stdout, or the help of COMMAND (one of the COMMANDS that\n"
    "`techfeed help` lists).\n"
    "\n"
    "EXIT STATUS\n"
    "  0 printed, 64 COMMAND is not a command, or more than one argument\n";

/*  help's run is NULL: main answers `techfeed help [COMMAND]` itself. */
static const s_command_t s_commands[] = {
    { "put", cli_put, BIT (OPT_ATOMIC) | BIT (OPT_EXPECT) | BIT (OPT_MAX_FRAME), 0, 1, s_help_put },
    { "delete", cli_delete, BIT (OPT_EXPECT), 1, 1, s_help_delete },
    { "get", cli_get, 0, 1, INT32_MAX, s_help_get },
    { "list", cli_list,
      BIT (OPT_SECTOR) | BIT (OPT_ORG) | BIT (OPT_COUNTRY) | BIT (OPT_SINCE) | BIT (OPT_UNTIL), 0,
      0, s_help_list },
    { "watch", cli_watch, BIT (OPT_SECTOR) | BIT (OPT_COUNT), 0, 0, s_help_watch },
    { "mirror", cli_mirror, BIT (OPT_SECTOR) | BIT (OPT_DB) | BIT (OPT_QUIET) | BIT (OPT_STATUS), 0,
      0, s_help_mirror },
    { "status", cli_status, BIT (OPT_SECTOR), 0, 0, s_help_status },
    { "health", cli_health, 0, 0, 0, s_help_health },
    { "keygen", cli_keygen, BIT (OPT_DIR), 1, 1, s_help_keygen },
    { "help", NULL, 0, 0, 1, s_help_help },
};
#define COMMANDS (sizeof s_commands / sizeof s_commands[0])

static const char s_help[] =
    "techfeed — store, read and watch technology milestones\n"
    "\n"
    "EXAMPLES\n"
    "  techfeed put milestones.ndjson              store records (JSON, array or NDJSON)\n"
    "  techfeed get change-4-far-side-landing      one record as JSON\n"
    "  techfeed list --sector space --since 2019   a table of matching records\n"
    "  techfeed watch --sector rail                the records, then every change live\n"
    "  techfeed mirror --db mirror.db              keep a replica in an SQLite file\n"
    "  techfeed delete some-id                     delete a record\n"
    "  techfeed status                             epoch, head sequence, record count\n"
    "  techfeed health                             exit 0 when the service answers\n"
    "  techfeed keygen writer                      a CURVE key pair (writer.key{,_secret})\n"
    "  techfeed --server db1 status                the service on host db1\n"
    "  techfeed --server-key server.key --key writer.key_secret put a.json   with CURVE\n"
    "  techfeed list --json | jq -r .id            NDJSON when piped or with --json\n"
    "\n"
    "USAGE\n"
    "  techfeed [OPTIONS] COMMAND [ARGS]   (options may also follow the command)\n"
    "\n"
    "COMMANDS\n"
    "  put [FILE|-]    store records; results per record\n"
    "  delete ID       delete a record\n"
    "  get ID...       print records by id\n"
    "  list            print the records that match filters\n"
    "  watch           print the records, then every change as it happens\n"
    "  mirror          keep the records current in an SQLite file\n"
    "  status          the service's state\n"
    "  health          exit 0 when the service answers (container health checks)\n"
    "  keygen NAME     make a CURVE key pair\n"
    "  help [COMMAND]  this help, or a command's\n"
    "\n"
    "SETTINGS (a flag wins over its variable, which wins over the default)\n"
    "  --server HOST     TECHFEED_SERVER      the service on HOST: tcp://HOST:5560,\n"
    "                                         :5561, :5562\n"
    "  --ingest EP       TECHFEED_INGEST      ingest endpoint, default " TF_DEFAULT_INGEST "\n"
    "  --events EP       TECHFEED_EVENTS      events endpoint, default " TF_DEFAULT_EVENTS "\n"
    "  --sync EP         TECHFEED_SYNC        sync endpoint, default " TF_DEFAULT_SYNC "\n"
    "  --timeout MS      TECHFEED_TIMEOUT     wait per try for the service, default 3000\n"
    "  --json            TECHFEED_JSON        NDJSON output, also on a terminal (true, false)\n"
    "  --server-key KEY  TECHFEED_SERVER_KEY  CURVE on: the service's public key (Z85) or\n"
    "                                         its public certificate file (NAME.key)\n"
    "  --key FILE        TECHFEED_KEY         CURVE: this client's certificate with its\n"
    "                                         secret (NAME.key_secret); default: a fresh\n"
    "                                         key pair, enough to read from a service that\n"
    "                                         admits any key\n"
    "  --sector S        TECHFEED_SECTOR      list, watch, status, mirror: only sector S\n"
    "                                         (repeatable, or a list: space,rail)\n"
    "  --db FILE         TECHFEED_MIRROR_DB   mirror: its SQLite file\n"
    "  --quiet           TECHFEED_QUIET       mirror: errors only (true, false)\n"
    "  --dir DIR         TECHFEED_KEY_DIR     keygen: where the files go, default .\n"
    "  --max-frame N     TECHFEED_MAX_FRAME   put: the service's --max-frame, default\n"
    "                                         4194304: records go in requests this large\n"
    "                                         at most\n"
    "  An endpoint flag wins over --server, which wins over the endpoint variables,\n"
    "  which win over TECHFEED_SERVER. Each command's own options: techfeed help COMMAND.\n"
    "\n"
    "OPTIONS\n"
    "  --print-config  print the effective settings (never key material) and exit\n"
    "  -h, --help      help; `techfeed help COMMAND` for a command's options\n"
    "  -V, --version   print the version\n"
    "\n"
    "EXIT STATUS\n"
    "  0 done, 1 not found (get, delete), 64 usage error (unknown command or option,\n"
    "  missing or extra arguments, a bad value of a command's own option), 65 bad\n"
    "  data (a record rejected), 66 input file missing, 69 service unavailable (or\n"
    "  a list cut short: run it again), 70 internal error, 73 cannot create a file,\n"
    "  74 I/O error, 77 not allowed (UNAUTHORIZED), 78 a bad value of a setting,\n"
    "  from its flag or its variable (the message names both)\n";

static const s_command_t *s_find (const char *name)
{
    for (size_t i = 0; i < COMMANDS; i++)
        if (strcmp (s_commands[i].name, name) == 0)
            return &s_commands[i];
    return NULL;
}

static int s_usage (const char *format, const char *arg)
{
    fputs ("techfeed: ", stderr);
    fprintf (stderr, format, arg);
    fputs ("\nTry 'techfeed --help'.\n", stderr);
    return EX_USAGE;
}

static const s_setting_t *s_setting (int opt)
{
    for (size_t i = 0; i < SETTINGS; i++)
        if (s_settings[i].opt == opt)
            return &s_settings[i];
    return NULL;
}

/*  What the command line and the environment say, before checking. */
typedef struct {
    const char *flag[OPT_LAST + 1]; /* last value of each flag, NULL if not given */
    char *sectors;                  /* every --sector, comma-joined (owned) */
} s_raw_t;

/*  Value of a setting: the flag, else its variable (if set and not empty),
    else NULL; *source says which. */
static const char *s_value (const s_raw_t *raw, int opt, const char **source)
{
    const s_setting_t *setting = s_setting (opt);
    const char *env = setting ? getenv (setting->env) : NULL;
    *source = "flag";
    if (raw->flag[opt])
        return raw->flag[opt];
    *source = "environment";
    return env && *env ? env : NULL;
}

/*  A bad value. Of a setting: `--name (ENV) from SOURCE: 'value' why`,
    78 (a configuration error, wherever it came from). Of a command's own
    option (flag only): `--name: 'value' why`, 64 (the command line is
    wrong). */
static int s_bad (int opt, const char *source, const char *value, const char *why)
{
    const s_setting_t *setting = s_setting (opt);
    if (setting) {
        fprintf (stderr, "techfeed: --%s (%s) from %s: '%s' %s\n", s_options[opt - 1].name,
                 setting->env, source, value, why);
        return EX_CONFIG;
    }
    fprintf (stderr, "techfeed: --%s: '%s' %s\nTry 'techfeed --help'.\n", s_options[opt - 1].name,
             value, why);
    return EX_USAGE;
}

/*  Parses a non-negative integer; false when it is not one. */
static bool s_number (const char *text, uint64_t max, uint64_t *value)
{
    if (!text || !*text || *text == '-' || *text == '+')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v > max)
        return false;
    *value = v;
    return true;
}

/*  A boolean setting: the flag means true, else its variable. 0 or 78. */
static int s_bool (const s_raw_t *raw, int opt, bool *value)
{
    const char *source;
    const char *text = s_value (raw, opt, &source);
    if (!text)
        return 0;
    static const char *yes[] = { "1", "true", "yes", "on" }, *no[] = { "0", "false", "no", "off" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp (text, yes[i]) == 0)
            return *value = true, 0;
        if (strcasecmp (text, no[i]) == 0)
            return *value = false, 0;
    }
    return s_bad (opt, source, text, "is not true or false");
}

/*  --sector values (repeatable, each maybe a comma list), else
    TECHFEED_SECTOR. 0 or 78. */
static int s_sectors (const s_raw_t *raw, cli_t *cli)
{
    const char *source = "flag";
    const char *text = raw->sectors;
    if (!text)
        text = s_value (raw, OPT_SECTOR, &source);
    if (!text)
        return 0;
    char *list = strdup (text), *save = NULL;
    if (!list)
        abort ();
    int status = 0;
    for (char *slug = strtok_r (list, ", ", &save); slug && !status;
         slug = strtok_r (NULL, ", ", &save)) {
        int sector = tf_sector_from_slug (slug);
        if (sector < 1) {
            status = s_bad (OPT_SECTOR, source, slug,
                            "is not a sector (ai telecom fintech energy space rail biotech "
                            "quantum chips other)");
            break;
        }
        bool dup = false;
        for (size_t i = 0; i < cli->n_sectors; i++)
            dup |= (int) cli->sectors[i] == sector;
        if (!dup)
            cli->sectors[cli->n_sectors++] = (Techfeed__Sector) sector;
    }
    free (list);
    return status;
}

/*  endpoint = flag, else tcp://--server:port, else env, else
    tcp://$TECHFEED_SERVER:port, else the default. */
static int s_endpoint (const s_raw_t *raw, char *out, size_t outlen, int opt, int port,
                       const char *fallback)
{
    const char *server_source, *source;
    const char *server = s_value (raw, OPT_SERVER, &server_source);
    const char *value = s_value (raw, opt, &source);
    bool flag_server = server && raw->flag[OPT_SERVER];
    if (value && (raw->flag[opt] || !flag_server))
        snprintf (out, outlen, "%s", value);
    else if (server) {
        if (!*server || strstr (server, "://") || strpbrk (server, "/ "))
            return s_bad (OPT_SERVER, server_source, server,
                          "is not a host name (for endpoints use --ingest, --events, --sync)");
        snprintf (out, outlen, "tcp://%s:%d", server, port);
    } else
        snprintf (out, outlen, "%s", fallback);
    return 0;
}

/*  Checks every setting into cli. 0, or 78 after naming the bad one. */
static int s_settings_load (const s_raw_t *raw, cli_t *cli)
{
    const char *source;
    const char *timeout = s_value (raw, OPT_TIMEOUT, &source);
    uint64_t number;
    if (timeout) {
        if (!s_number (timeout, 24 * 3600 * 1000, &number) || number == 0)
            return s_bad (OPT_TIMEOUT, source, timeout,
                          "is not a number of milliseconds (1 to 86400000)");
        cli->timeout_ms = (int) number;
    }
    //  The service's bounds of its own --max-frame, which shares the variable
    const char *max_frame = s_value (raw, OPT_MAX_FRAME, &source);
    if (max_frame) {
        if (!s_number (max_frame, 268435456, &number) || number < 1024)
            return s_bad (OPT_MAX_FRAME, source, max_frame,
                          "is not a number of bytes (1024 to 268435456)");
        cli->max_frame = (size_t) number;
    }
    bool json = false;
    int status = s_bool (raw, OPT_JSON, &json);
    if (!status)
        status = s_bool (raw, OPT_QUIET, &cli->quiet);
    if (!status)
        status = s_sectors (raw, cli);
    if (!status)
        status =
            s_endpoint (raw, cli->ingest, sizeof cli->ingest, OPT_INGEST, 5560, TF_DEFAULT_INGEST);
    if (!status)
        status =
            s_endpoint (raw, cli->events, sizeof cli->events, OPT_EVENTS, 5561, TF_DEFAULT_EVENTS);
    if (!status)
        status = s_endpoint (raw, cli->sync, sizeof cli->sync, OPT_SYNC, 5562, TF_DEFAULT_SYNC);
    if (status)
        return status;
    cli->server_key = s_value (raw, OPT_SERVER_KEY, &source);
    cli->key = s_value (raw, OPT_KEY, &source);
    if (cli->key && !cli->server_key) {
        fprintf (stderr,
                 "techfeed: --key (TECHFEED_KEY) from %s: '%s' needs --server-key "
                 "(TECHFEED_SERVER_KEY): CURVE needs the service's public key\n",
                 source, cli->key);
        return EX_CONFIG;
    }
    cli->db = s_value (raw, OPT_DB, &source);
    cli->dir = s_value (raw, OPT_DIR, &source);
    if (!cli->dir)
        cli->dir = ".";
    cli->pretty = !json && isatty (STDOUT_FILENO);
    cli->json = !cli->pretty;
    return 0;
}

/*  --print-config: every setting's effective value, as name=value. Key
    settings are paths or public keys; key material is never read here. */
static void s_print_config (const s_raw_t *raw, const cli_t *cli)
{
    char sectors[200] = "";
    for (size_t i = 0; i < cli->n_sectors; i++)
        snprintf (sectors + strlen (sectors), sizeof sectors - strlen (sectors), "%s%s",
                  i ? "," : "", cli_slug (cli->sectors[i]));
    const char *source;
    const char *server = s_value (raw, OPT_SERVER, &source);
    printf ("server=%s\n", server ? server : "");
    printf ("ingest=%s\nevents=%s\nsync=%s\n", cli->ingest, cli->events, cli->sync);
    printf ("timeout=%d\njson=%s\n", cli->timeout_ms, cli->pretty ? "false" : "true");
    printf ("server-key=%s\nkey=%s\n", cli->server_key ? cli->server_key : "",
            cli->key ? cli->key : "");
    printf ("sector=%s\ndb=%s\nquiet=%s\ndir=%s\n", sectors, cli->db ? cli->db : "",
            cli->quiet ? "true" : "false", cli->dir);
    printf ("max-frame=%zu\n", cli->max_frame);
}

/*  Flag-only options of commands. 0, or 64 naming the option. */
static int s_option (cli_t *cli, int opt, const char *arg)
{
    uint64_t number;
    switch (opt) {
        case OPT_ATOMIC: cli->atomic = true; break;
        case OPT_STATUS: cli->status_only = true; break;
        case OPT_EXPECT:
            if (!s_number (arg, UINT64_MAX, &cli->expect))
                return s_bad (opt, "flag", arg, "is not a revision number");
            cli->has_expect = true;
            break;
        case OPT_ORG:
            if (!*arg)
                return s_bad (opt, "flag", arg, "is not an organization name");
            cli->org = arg;
            break;
        case OPT_COUNTRY:
            if (!tf_valid_country (arg))
                return s_bad (opt, "flag", arg, "is not an ISO 3166-1 alpha-2 code (CN)");
            cli->country = arg;
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
            if (!tf_valid_date (arg))
                return s_bad (opt, "flag", arg, "is not a date (YYYY, YYYY-MM or YYYY-MM-DD)");
            *(opt == OPT_SINCE ? &cli->since : &cli->until) = arg;
            break;
        case OPT_COUNT:
            if (!s_number (arg, LONG_MAX, &number) || number == 0)
                return s_bad (opt, "flag", arg, "is not a positive number");
            cli->count = (long) number;
            break;
    }
    return 0;
}

int main (int argc, char *argv[])
{
    cli_t cli = { .timeout_ms = TF_DEFAULT_TIMEOUT_MS, .max_frame = TF_DEFAULT_MAX_FRAME };
    s_raw_t raw = { { NULL }, NULL };
    unsigned given = 0; // BIT()s of the options used
    bool help = false, print_config = false;
    int opt, status = 0;
    opterr = 0;
    while (status == 0 && (opt = getopt_long (argc, argv, ":hV", s_options, NULL)) != -1) {
        if (opt == 'h')
            opt = OPT_HELP;
        else if (opt == 'V')
            opt = OPT_VERSION;
        switch (opt) {
            case OPT_HELP: help = true; break;
            case OPT_VERSION: printf ("techfeed %s\n", techfeed_version ()); return 0;
            case OPT_PRINT_CONFIG: print_config = true; break;
            case OPT_JSON:
            case OPT_QUIET: raw.flag[opt] = "true"; break;
            case OPT_SECTOR: {
                char *joined = NULL;
                if (asprintf (&joined, "%s%s%s", raw.sectors ? raw.sectors : "",
                              raw.sectors ? "," : "", optarg) < 0)
                    abort ();
                free (raw.sectors);
                raw.sectors = joined;
                break;
            }
            case ':': return s_usage ("%s needs a value", argv[optind - 1]);
            case '?': return s_usage ("unknown option '%s'", argv[optind - 1]);
            default:
                if (s_setting (opt))
                    raw.flag[opt] = optarg;
                else
                    status = s_option (&cli, opt, optarg);
        }
        given |= BIT (opt);
    }
    //  Help needs no settings: it is shown whatever the environment holds
    bool asks_help = help || (optind < argc && strcmp (argv[optind], "help") == 0);
    if (status == 0 && (print_config || !asks_help))
        status = s_settings_load (&raw, &cli);
    if (status == 0 && print_config)
        s_print_config (&raw, &cli);
    free (raw.sectors);
    if (status || print_config)
        return status;
    cli.args = argv + optind;
    cli.nargs = argc - optind;

    //  techfeed help [COMMAND], techfeed [COMMAND] --help
    const char *name = cli.nargs > 0 ? cli.args[0] : NULL;
    if (name && strcmp (name, "help") == 0 && !help) {
        if (cli.nargs > 2) {
            fprintf (stderr, "techfeed help: extra argument '%s' (one COMMAND at most)\n",
                     cli.args[2]);
            fputs ("Try 'techfeed help help'.\n", stderr);
            return EX_USAGE;
        }
        help = true;
        name = cli.nargs > 1 ? cli.args[1] : NULL;
    }
    const s_command_t *command = name ? s_find (name) : NULL;
    if (name && !command)
        return s_usage ("'%s' is not a command", name);
    if (help || !command) {
        fputs (command ? command->help : s_help, command || help ? stdout : stderr);
        return help ? 0 : EX_USAGE;
    }
    cli.command = command->name;
    cli.args++;
    cli.nargs--;
    for (int opt_bit = OPT_SERVER; opt_bit <= OPT_LAST; opt_bit++)
        if ((given & BIT (opt_bit)) && !((GLOBAL_OPTS | command->options) & BIT (opt_bit))) {
            fprintf (stderr, "techfeed %s: --%s is not an option of this command\n", command->name,
                     s_options[opt_bit - 1].name);
            fprintf (stderr, "Try 'techfeed help %s'.\n", command->name);
            return EX_USAGE;
        }
    if (cli.nargs < command->min_args || cli.nargs > command->max_args) {
        fprintf (stderr, "techfeed %s: %s arguments\n", command->name,
                 cli.nargs < command->min_args ? "missing" : "too many");
        fprintf (stderr, "Try 'techfeed help %s'.\n", command->name);
        return EX_USAGE;
    }
    //  The library's warnings (bad messages) must never mix into stdout's NDJSON
    zsys_set_logstream (stderr);
    return command->run (&cli);
}
