/*  tf_validate — the rules a milestone must satisfy before it is stored.

    Every check names the offending field as a JSON pointer ("/metrics/2/unit")
    so the service, the CLI and the JSON importer report the same thing.
*/
#ifndef TF_VALIDATE_H_INCLUDED
#define TF_VALIDATE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "techfeed.pb-c.h"

/*  Field limits. Lengths are in bytes of UTF-8. */
#define TF_ID_MAX 128
#define TF_TITLE_MAX 300
#define TF_SUMMARY_MAX 4000
#define TF_NAME_MAX 200 /* organization, metric name */
#define TF_UNIT_MAX 32
#define TF_URL_MAX 2048
#define TF_TAG_MAX 64
#define TF_LIST_MAX 32 /* organizations, metrics, sources, tags */
#define TF_REQUEST_ID_MAX 64

typedef struct {
    char field[96];    /* JSON pointer of the bad field, "" for the whole record */
    char message[256]; /* what is wrong, for humans */
} tf_verror_t;

/*  Sets `err` (NULL is allowed) to `field` and the printf-style message,
    cutting either at a UTF-8 boundary where it does not fit. Returns -1, so
    a check can end with `return tf_verror_set (...)`. */
int tf_verror_set (tf_verror_t *err, const char *field, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  0 when `record` may be stored; -1 with `err` filled otherwise. Server-
    assigned fields (revision, updated_at_ms) are ignored. */
int tf_validate_milestone (const Techfeed__Milestone *record, tf_verror_t *err);

/*  0 when a sync filter may be used (NULL is fine); -1 with `err` naming
    the field ("/filter/country") otherwise. */
int tf_validate_filter (const Techfeed__Filter *filter, tf_verror_t *err);

/*  True for an epoch as the service makes them: 32 lower-case hex digits. */
bool tf_valid_epoch (const char *epoch);

/*  Single rules, also used for delete ids, request ids and filters. */
bool tf_valid_id (const char *id);           /* [a-z0-9][a-z0-9._-]{0,127} */
bool tf_valid_date (const char *date);       /* YYYY, YYYY-MM, YYYY-MM-DD, real calendar date */
bool tf_valid_country (const char *country); /* two upper-case ASCII letters */
bool tf_valid_request_id (const char *request_id); /* 1..64 printable ASCII */
/*  Well-formed UTF-8 (no overlongs, no surrogates) with no control
    characters except tab/newline where `multiline` is true. */
bool tf_valid_text (const char *text, bool multiline);

#endif
