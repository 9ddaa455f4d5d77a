/*  tf_fixture — shared test data: the article's Chang'e-4 milestone with
    every field set, and a change event of it.
*/
#ifndef TF_FIXTURE_H_INCLUDED
#define TF_FIXTURE_H_INCLUDED

#include "techfeed.pb-c.h"

/*  A new, valid milestone with every field set (revision 7, updated_at_ms
    1795887738123). Caller frees with techfeed__milestone__free_unpacked
    (m, NULL). */
Techfeed__Milestone *tf_fixture_milestone (void);

/*  Fills `ev` as a change of that milestone (its id, sector space,
    revision 7) of `kind` at `sequence`, in epoch
    "0123456789abcdef0123456789abcdef"; no record, no timestamp. Its
    strings are literals: never free_unpacked. */
void tf_fixture_change (Techfeed__ChangeEvent *ev, Techfeed__ChangeKind kind, uint64_t sequence);

#endif
