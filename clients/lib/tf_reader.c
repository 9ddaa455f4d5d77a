/*  tf_reader — JSON values with line numbers. See tf_reader.h.
*/
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tf_reader.h"

#define TF_JSON_FLAGS (JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

typedef enum {
    S_START,  /* nothing read yet: the form is not known */
    S_STREAM, /* values one after another (NDJSON) */
    S_ARRAY,  /* inside a top-level array */
    S_END,    /* done (end of data, end of the array, or an error in an array) */
} s_mode_t;

struct _tf_reader_t {
    const char *data; /* the text, borrowed */
    size_t size;      /* its length */
    size_t pos;       /* next byte to read */
    size_t line;      /* line of data[pos], 1-based */
    s_mode_t mode;    /* the form, once known */
    size_t count;     /* values returned from the array so far */
};

tf_reader_t *tf_reader_new (const char *data, size_t size)
{
    assert (data || size == 0);
    tf_reader_t *self = (tf_reader_t *) calloc (1, sizeof (tf_reader_t));
    if (!self)
        abort ();
    self->data = data ? data : "";
    self->size = size;
    self->line = 1;
    //  A UTF-8 byte order mark is not JSON but editors write it
    if (size >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0)
        self->pos = 3;
    return self;
}

void tf_reader_destroy (tf_reader_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

/*  Moves to `pos`, counting the newlines passed. */
static void s_advance (tf_reader_t *self, size_t pos)
{
    if (pos > self->size)
        pos = self->size;
    for (size_t i = self->pos; i < pos; i++)
        if (self->data[i] == '\n')
            self->line++;
    self->pos = pos;
}

static void s_skip_space (tf_reader_t *self)
{
    size_t pos = self->pos;
    while (pos < self->size && strchr (" \t\r\n", self->data[pos]) && self->data[pos])
        pos++;
    s_advance (self, pos);
}

/*  Past the end of the current line. */
static void s_skip_line (tf_reader_t *self)
{
    const char *nl = memchr (self->data + self->pos, '\n', self->size - self->pos);
    s_advance (self, nl ? (size_t) (nl - self->data) + 1 : self->size);
}

static int s_error (tf_reader_t *self, size_t line, char *err, size_t errlen, const char *message,
                    size_t *line_out)
{
    snprintf (err, errlen, "%s", message);
    *line_out = line;
    return -1;
}

int tf_reader_next (tf_reader_t *self, json_t **value, size_t *line, char *err, size_t errlen)
{
    assert (self && value && line);
    *value = NULL;
    s_skip_space (self);
    if (self->mode == S_START) {
        if (self->pos < self->size && self->data[self->pos] == '[') {
            self->mode = S_ARRAY;
            s_advance (self, self->pos + 1);
            s_skip_space (self);
        } else
            self->mode = S_STREAM;
    }
    if (self->mode == S_END)
        return 0;
    if (self->mode == S_ARRAY) {
        //  Between elements: "]" ends, "," separates
        if (self->pos >= self->size) {
            self->mode = S_END;
            return s_error (self, self->line, err, errlen,
                            "end of file inside the array (']' expected)", line);
        }
        char c = self->data[self->pos];
        if (c == ']') {
            s_advance (self, self->pos + 1);
            s_skip_space (self);
            self->mode = S_END;
            if (self->pos < self->size)
                return s_error (self, self->line, err, errlen, "data after the array", line);
            return 0;
        }
        if (self->count > 0) {
            if (c != ',') {
                self->mode = S_END;
                return s_error (self, self->line, err, errlen, "',' or ']' expected", line);
            }
            s_advance (self, self->pos + 1);
            s_skip_space (self);
        }
    } else if (self->pos >= self->size)
        return 0;

    json_error_t jerr;
    size_t start_line = self->line;
    json_t *parsed =
        json_loadb (self->data + self->pos, self->size - self->pos, TF_JSON_FLAGS, &jerr);
    if (!parsed) {
        //  Cut short by the end of the file: jansson's line is then past
        //  the last one, so the error goes where the record starts
        bool cut_short = (size_t) jerr.position >= self->size - self->pos;
        size_t at = start_line + (jerr.line > 0 && !cut_short ? (size_t) jerr.line - 1 : 0);
        char message[300];
        snprintf (message, sizeof message, "%s%s",
                  cut_short ? "the record starting here is cut short by the end of the file: " : "",
                  jerr.text);
        if (self->mode == S_ARRAY || cut_short)
            self->mode = S_END;
        else
            s_skip_line (self);
        return s_error (self, at, err, errlen, message, line);
    }
    s_advance (self, self->pos + (size_t) jerr.position);
    if (self->mode == S_ARRAY)
        self->count++;
    *value = parsed;
    *line = start_line;
    return 1;
}
