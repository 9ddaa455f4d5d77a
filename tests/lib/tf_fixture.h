/*  tf_fixture — shared test data: the article's Chang'e-4 milestone with
    every field set.
*/
#ifndef TF_FIXTURE_H_INCLUDED
#define TF_FIXTURE_H_INCLUDED

#include "techfeed.pb-c.h"

/*  A new, valid milestone with every field set (revision 7, updated_at_ms
    1795887738123). Caller frees with techfeed__milestone__free_unpacked
    (m, NULL). */
Techfeed__Milestone *tf_fixture_milestone (void);

#endif
