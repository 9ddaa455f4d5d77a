/*  tf_json — milestones as JSON objects (jansson), the CLI's and the
    import file's format. PROTOCOL.md "JSON form" documents the mapping.
*/
#ifndef TF_JSON_H_INCLUDED
#define TF_JSON_H_INCLUDED

#include <jansson.h>

#include "techfeed.pb-c.h"
#include "tf_validate.h"

/*  Builds a milestone from a JSON object. Returns NULL with err->field set
    to the JSON pointer of the offending member on a type error, an unknown
    member or an unknown enum name. Does not apply tf_validate_milestone
    (the caller does, so the service and the CLI share one rule set).
    Caller frees with techfeed__milestone__free_unpacked (m, NULL). */
Techfeed__Milestone *tf_json_to_milestone (const json_t *object, tf_verror_t *err);

/*  New JSON object for a milestone (revision and updated_at included when
    set). Caller owns the reference. */
json_t *tf_json_from_milestone (const Techfeed__Milestone *record);

/*  Significant digits (15, 16 or 17) that print `value` so it reads back
    exactly: "138.7", not 17 digits' "138.69999999999999". %.15g already
    drops trailing zeros, and every double whose shortest decimal form
    has at most 15 digits prints as that form. */
int tf_json_real_digits (double value);

/*  `value` printed "%.*g" with those digits into `buffer` (40 bytes are
    enough); the length printed. */
int tf_json_real_print (double value, char *buffer, size_t size);

/*  The same for every real in `value`'s tree, the most any needs: a dump
    with JSON_REAL_PRECISION of it reads back exactly. */
int tf_json_real_precision (const json_t *value);

/*  A change event as {"seq":..,"kind":"put"|"delete","id":..,"sector":..,
    "revision":..,"record":{..}}. Caller owns the reference. */
json_t *tf_json_from_change (const Techfeed__ChangeEvent *event);

#endif
