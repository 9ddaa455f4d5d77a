/*  tf_validate — the rules a milestone must satisfy before it is stored
    (PROTOCOL.md §4). See tf_validate.h.
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tf_validate.h"
#include "tf_wire.h"

/*  Drops a multi-byte sequence that snprintf cut at the end of `buf`. */
static void s_clip_utf8 (char *buf)
{
    size_t n = strlen (buf), lead = n;
    while (lead > 0 && n - lead < 3 && ((unsigned char) buf[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0 || (unsigned char) buf[lead - 1] < 0xC0)
        return; // ends in ASCII or stray continuation bytes: nothing was cut
    unsigned char c = (unsigned char) buf[lead - 1];
    size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (n - (lead - 1) < want)
        buf[lead - 1] = '\0';
}

int tf_verror_set (tf_verror_t *err, const char *field, const char *format, ...)
{
    if (!err)
        return -1;
    snprintf (err->field, sizeof err->field, "%s", field);
    s_clip_utf8 (err->field);
    va_list args;
    va_start (args, format);
    vsnprintf (err->message, sizeof err->message, format, args);
    va_end (args);
    s_clip_utf8 (err->message);
    return -1;
}

// --------------------------------------------------------------- text

/*  Decodes one UTF-8 sequence at `s` into `cp`; returns its length, or 0
    when it is not well-formed (overlong, surrogate, above U+10FFFF,
    truncated, stray continuation byte). Ranges per Unicode table 3-7. */
static int s_utf8_next (const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; // overlong below U+0800
        else if (c == 0xED)
            hi = 0x9F; // surrogates D800..DFFF
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; // overlong below U+10000
        else if (c == 0xF4)
            hi = 0x8F; // above U+10FFFF
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    uint32_t value = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        //  The NUL terminator fails this test, so a cut sequence stops here
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        value = value << 6 | (s[i] & 0x3F);
    }
    *cp = value;
    return len;
}

#define S_TEXT_UTF8 1    /* not well-formed UTF-8 */
#define S_TEXT_CONTROL 2 /* a control character */

/*  0 when `text` is acceptable; otherwise S_TEXT_* with the byte offset in
    `at` and, for a control character, its code point in `cp`. C0, DEL and
    C1 controls are refused; tab and newline only where `multiline`. */
static int s_text_problem (const char *text, bool multiline, size_t *at, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *) text;
    size_t i = 0;
    while (s[i]) {
        if (s[i] >= 0x20 && s[i] < 0x7F) { // printable ASCII, most of any text
            i++;
            continue;
        }
        int len = s_utf8_next (s + i, cp);
        if (len == 0) {
            *at = i;
            return S_TEXT_UTF8;
        }
        bool control = *cp < 0x20 || (*cp >= 0x7F && *cp <= 0x9F);
        if (control && !(multiline && (*cp == '\t' || *cp == '\n'))) {
            *at = i;
            return S_TEXT_CONTROL;
        }
        i += len;
    }
    return 0;
}

bool tf_valid_text (const char *text, bool multiline)
{
    size_t at;
    uint32_t cp;
    return text && s_text_problem (text, multiline, &at, &cp) == 0;
}

/*  A string field: present when `min` > 0, `min`..`max` bytes, good text. */
static int s_check_text (tf_verror_t *err, const char *field, const char *text, size_t min,
                         size_t max, bool multiline)
{
    if (!text)
        return min > 0 ? tf_verror_set (err, field, "is required") : 0;
    size_t len = strlen (text);
    if (len < min || len > max) {
        if (min > 0)
            return tf_verror_set (err, field, "must be %zu to %zu bytes, got %zu", min, max, len);
        return tf_verror_set (err, field, "must be at most %zu bytes, got %zu", max, len);
    }
    size_t at;
    uint32_t cp;
    int problem = s_text_problem (text, multiline, &at, &cp);
    if (problem == S_TEXT_UTF8)
        return tf_verror_set (err, field, "is not valid UTF-8 at byte %zu", at);
    if (problem == S_TEXT_CONTROL)
        return tf_verror_set (err, field, "contains control character U+%04X at byte %zu",
                              (unsigned) cp, at);
    return 0;
}

// --------------------------------------------------------------- single rules

static bool s_lower_or_digit (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool tf_valid_id (const char *id)
{
    if (!id || !s_lower_or_digit (id[0]))
        return false;
    size_t len = 1;
    for (const char *p = id + 1; *p; p++, len++)
        if (!s_lower_or_digit (*p) && *p != '.' && *p != '_' && *p != '-')
            return false;
    return len <= TF_ID_MAX;
}

bool tf_valid_country (const char *country)
{
    return country && country[0] >= 'A' && country[0] <= 'Z' && country[1] >= 'A' &&
           country[1] <= 'Z' && country[2] == '\0';
}

bool tf_valid_request_id (const char *request_id)
{
    if (!request_id)
        return false;
    size_t len = strlen (request_id);
    if (len < 1 || len > TF_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (request_id[i] < 0x21 || request_id[i] > 0x7E)
            return false;
    return true;
}

#define S_DATE_FORMAT 1   /* not YYYY, YYYY-MM or YYYY-MM-DD */
#define S_DATE_YEAR 2     /* year outside 1000..9999 */
#define S_DATE_CALENDAR 3 /* no such month or day */

/*  Reads `n` ASCII digits; -1 if any is not a digit. */
static int s_digits (const char *s, int n)
{
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        value = value * 10 + (s[i] - '0');
    }
    return value;
}

static int s_date_problem (const char *date)
{
    size_t len = strlen (date);
    if (len != 4 && len != 7 && len != 10)
        return S_DATE_FORMAT;
    if ((len >= 7 && date[4] != '-') || (len == 10 && date[7] != '-'))
        return S_DATE_FORMAT;
    int year = s_digits (date, 4);
    int month = len >= 7 ? s_digits (date + 5, 2) : 1;
    int day = len == 10 ? s_digits (date + 8, 2) : 1;
    if (year < 0 || month < 0 || day < 0)
        return S_DATE_FORMAT;
    if (year < 1000)
        return S_DATE_YEAR;
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (month < 1 || month > 12)
        return S_DATE_CALENDAR;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last = days[month - 1] + (month == 2 && leap);
    if (day < 1 || day > last)
        return S_DATE_CALENDAR;
    return 0;
}

bool tf_valid_date (const char *date)
{
    return date && s_date_problem (date) == 0;
}

// --------------------------------------------------------------- record

/*  The inside of a URL's brackets (RFC 3986 IP-literal): an IPv6 address,
    with an RFC 6874 zone ("%25eth0") if any, or IPvFuture ("v1.x"). */
static bool s_ip_literal (const char *text, size_t len)
{
    if (len > 1 && (text[0] == 'v' || text[0] == 'V')) {
        size_t hex = 1;
        while (hex < len && isxdigit ((unsigned char) text[hex]))
            hex++;
        return hex > 1 && hex + 1 < len && text[hex] == '.';
    }
    char address[64];
    const char *zone = memchr (text, '%', len);
    size_t address_len = zone ? (size_t) (zone - text) : len;
    if (address_len >= sizeof address ||
        (zone && (len - address_len < 4 || strncmp (zone, "%25", 3) != 0)))
        return false;
    memcpy (address, text, address_len);
    address[address_len] = 0;
    unsigned char binary[16];
    return inet_pton (AF_INET6, address, binary) == 1;
}

/*  An http(s) URL: scheme (any case), then a non-empty host before any
    port, path, query or fragment (in brackets, an IP literal, then the
    port if any); no spaces or control characters anywhere. */
static int s_check_url (tf_verror_t *err, const char *field, const char *url)
{
    if (s_check_text (err, field, url, 1, TF_URL_MAX, false))
        return -1;
    for (size_t i = 0; url[i]; i++)
        if (url[i] == ' ')
            return tf_verror_set (err, field, "contains a space at byte %zu", i);
    const char *rest;
    if (strncasecmp (url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp (url, "https://", 8) == 0)
        rest = url + 8;
    else
        return tf_verror_set (err, field, "must be an http:// or https:// URL");
    size_t authority = strcspn (rest, "/?#");
    const char *host = rest;
    for (size_t i = 0; i < authority; i++)
        if (rest[i] == '@')
            host = rest + i + 1; // after the userinfo
    size_t host_len = (size_t) (rest + authority - host);
    if (host_len > 0 && host[0] == '[') {
        //  An IP literal: what is between the brackets, none unclosed
        const char *close = memchr (host, ']', host_len);
        size_t after = close ? (size_t) (host + host_len - close - 1) : 0;
        host_len = close ? (size_t) (close - host - 1) : 0;
        if (host_len > 0 && (!s_ip_literal (host + 1, host_len) || (after && close[1] != ':')))
            return tf_verror_set (err, field, "has a host in brackets that is not an IPv6 address");
    } else if (host_len > 0)
        host_len = strcspn (host, ":/?#"); // before the port
    if (host_len == 0)
        return tf_verror_set (err, field, "has no host");
    return 0;
}

static int s_check_tag (tf_verror_t *err, const char *field, const char *tag)
{
    if (!tag)
        return tf_verror_set (err, field, "is required");
    size_t len = strlen (tag);
    if (len < 1 || len > TF_TAG_MAX)
        return tf_verror_set (err, field, "must be 1 to %d bytes, got %zu", TF_TAG_MAX, len);
    for (size_t i = 0; i < len; i++)
        if (!s_lower_or_digit (tag[i]) && !(tag[i] == '-' && i > 0))
            return tf_verror_set (err, field, "must be a-z, 0-9 and '-', not starting with '-'");
    return 0;
}

static int s_check_count (tf_verror_t *err, const char *field, size_t count)
{
    if (count > TF_LIST_MAX)
        return tf_verror_set (err, field, "must have at most %d items, got %zu", TF_LIST_MAX,
                              count);
    return 0;
}

static int s_check_date (tf_verror_t *err, const char *date)
{
    if (!date)
        return tf_verror_set (err, "/date", "is required");
    switch (s_date_problem (date)) {
        case 0: return 0;
        case S_DATE_YEAR: return tf_verror_set (err, "/date", "year must be 1000 to 9999");
        case S_DATE_CALENDAR:
            return tf_verror_set (err, "/date", "%s is not a calendar date", date);
        default: return tf_verror_set (err, "/date", "must be YYYY, YYYY-MM or YYYY-MM-DD");
    }
}

/*  Puts `format`'s expansion in front of err->field: an item is checked
    with the field relative to it, and its place is only printed when it
    failed (the success path formats nothing). Returns -1. */
static int s_field_under (tf_verror_t *err, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int s_field_under (tf_verror_t *err, const char *format, ...)
{
    if (!err)
        return -1;
    char relative[sizeof err->field];
    memcpy (relative, err->field, sizeof relative);
    va_list args;
    va_start (args, format);
    vsnprintf (err->field, sizeof err->field, format, args);
    va_end (args);
    size_t used = strlen (err->field), room = sizeof err->field - 1 - used;
    size_t rest = strlen (relative);
    memcpy (err->field + used, relative, rest < room ? rest : room);
    err->field[used + (rest < room ? rest : room)] = '\0';
    s_clip_utf8 (err->field);
    return -1;
}

typedef int (s_item_check_fn) (tf_verror_t *err, const char *field, const char *item);

/*  A repeated string field: at most TF_LIST_MAX items, each passing
    `check`, and with `unique` no item twice. */
static int s_check_list (tf_verror_t *err, const char *name, char *const *items, size_t count,
                         s_item_check_fn *check, bool unique)
{
    if (s_check_count (err, "", count))
        return s_field_under (err, "/%s", name);
    for (size_t i = 0; i < count; i++) {
        if (check (err, "", items[i]))
            return s_field_under (err, "/%s/%zu", name, i);
        for (size_t j = 0; unique && j < i; j++)
            if (strcmp (items[i], items[j]) == 0) {
                tf_verror_set (err, "", "duplicates /%s/%zu", name, j);
                return s_field_under (err, "/%s/%zu", name, i);
            }
    }
    return 0;
}

static int s_check_name (tf_verror_t *err, const char *field, const char *name)
{
    return s_check_text (err, field, name, 1, TF_NAME_MAX, false);
}

static int s_check_metric (tf_verror_t *err, const Techfeed__Metric *metric)
{
    if (!metric)
        return tf_verror_set (err, "", "is required");
    if (s_check_name (err, "/name", metric->name))
        return -1;
    if (!metric->has_value)
        return tf_verror_set (err, "/value", "is required");
    if (!isfinite (metric->value))
        return tf_verror_set (err, "/value", "must be a finite number");
    return s_check_text (err, "/unit", metric->unit, 0, TF_UNIT_MAX, false);
}

static int s_check_metrics (tf_verror_t *err, const Techfeed__Milestone *m)
{
    if (s_check_count (err, "/metrics", m->n_metrics))
        return -1;
    for (size_t i = 0; i < m->n_metrics; i++)
        if (s_check_metric (err, m->metrics[i]))
            return s_field_under (err, "/metrics/%zu", i);
    return 0;
}

static int s_check_id (tf_verror_t *err, const char *id)
{
    if (!id)
        return tf_verror_set (err, "/id", "is required");
    size_t len = strlen (id);
    if (len < 1 || len > TF_ID_MAX)
        return tf_verror_set (err, "/id", "must be 1 to %d bytes, got %zu", TF_ID_MAX, len);
    if (!tf_valid_id (id))
        return tf_verror_set (err, "/id",
                              "must be a-z, 0-9, '.', '_' and '-', starting with a-z or 0-9");
    return 0;
}

int tf_validate_milestone (const Techfeed__Milestone *record, tf_verror_t *err)
{
    if (!record)
        return tf_verror_set (err, "", "is required");
    if (s_check_id (err, record->id))
        return -1;
    if (!record->has_sector)
        return tf_verror_set (err, "/sector", "is required");
    if (record->sector < 1 || record->sector > TF_SECTOR_MAX)
        return tf_verror_set (err, "/sector", "must be 1 to %d, got %d", TF_SECTOR_MAX,
                              (int) record->sector);
    if (s_check_text (err, "/title", record->title, 1, TF_TITLE_MAX, false) ||
        s_check_text (err, "/summary", record->summary, 0, TF_SUMMARY_MAX, true) ||
        s_check_list (err, "organizations", record->organizations, record->n_organizations,
                      s_check_name, true))
        return -1;
    if (record->country && !tf_valid_country (record->country))
        return tf_verror_set (err, "/country",
                              "must be two upper-case letters (ISO 3166-1 alpha-2)");
    if (s_check_date (err, record->date))
        return -1;
    if (record->has_status && (record->status < 1 || record->status > TF_STATUS_MAX))
        return tf_verror_set (err, "/status", "must be 1 to %d, got %d", TF_STATUS_MAX,
                              (int) record->status);
    if (s_check_metrics (err, record) ||
        s_check_list (err, "sources", record->sources, record->n_sources, s_check_url, false) ||
        s_check_list (err, "tags", record->tags, record->n_tags, s_check_tag, false))
        return -1;
    return 0;
}

int tf_validate_filter (const Techfeed__Filter *filter, tf_verror_t *err)
{
    if (!filter)
        return 0;
    if (filter->n_sectors > TF_SECTOR_MAX * 4)
        return tf_verror_set (err, "/filter/sectors", "more than %d entries", TF_SECTOR_MAX * 4);
    for (size_t i = 0; i < filter->n_sectors; i++)
        if (!tf_sector_slug (filter->sectors[i])) {
            char field[48];
            snprintf (field, sizeof field, "/filter/sectors/%zu", i);
            return tf_verror_set (err, field, "not a sector");
        }
    if (filter->organization && (!tf_valid_text (filter->organization, false) ||
                                 strlen (filter->organization) > TF_NAME_MAX))
        return tf_verror_set (err, "/filter/organization", "not a valid organization name");
    if (filter->country && !tf_valid_country (filter->country))
        return tf_verror_set (err, "/filter/country", "must be two upper-case letters");
    if (filter->date_from && !tf_valid_date (filter->date_from))
        return tf_verror_set (err, "/filter/date_from", "must be YYYY, YYYY-MM or YYYY-MM-DD");
    if (filter->date_to && !tf_valid_date (filter->date_to))
        return tf_verror_set (err, "/filter/date_to", "must be YYYY, YYYY-MM or YYYY-MM-DD");
    return 0;
}

bool tf_valid_epoch (const char *epoch)
{
    if (!epoch || strlen (epoch) != 32)
        return false;
    for (const char *c = epoch; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}
