/*  tf_reader — JSON values out of an import file, each with the line it
    starts on, so errors can say `FILE:LINE: /field: message`.

    Accepts the three forms PROTOCOL.md §3 files come in, told apart by the
    first character: one JSON object, a JSON array of objects, or a stream
    of objects (NDJSON: one per line; objects spread over several lines
    and separated by any whitespace are accepted too). Parsing is jansson's
    (duplicate keys refused); the reader only finds where each value
    starts. After a syntax error in a stream, reading resumes on the next
    line; in an array it stops.
*/
#ifndef TF_READER_H_INCLUDED
#define TF_READER_H_INCLUDED

#include <jansson.h>
#include <stddef.h>

typedef struct _tf_reader_t tf_reader_t;

/*  Reader over `size` bytes of `data` (borrowed: must outlive the
    reader). */
tf_reader_t *tf_reader_new (const char *data, size_t size);
void tf_reader_destroy (tf_reader_t **self_p);

/*  Next value: 1 with *value (caller owns the reference) and *line (1-based
    line it starts on); 0 at the end; -1 on a syntax error, with *line the
    line of the error and `err` the message. Values other than objects are
    returned as they are: the caller decides. */
int tf_reader_next (tf_reader_t *self, json_t **value, size_t *line, char *err, size_t errlen);

#endif
