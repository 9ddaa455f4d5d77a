/*  tf_fixture — shared test data. See tf_fixture.h. */
#include "tf_fixture.h"
#include "tf_wire.h"

Techfeed__Milestone *tf_fixture_milestone (void)
{
    static char *orgs[] = { "CNSA", "CAST" };
    static char *sources[] = { "https://en.wikipedia.org/wiki/Chang%27e_4" };
    static char *tags[] = { "moon", "far-side" };
    Techfeed__Metric metric, *metrics[] = { &metric };
    techfeed__metric__init (&metric);
    metric.name = "rover mass";
    metric.has_value = 1;
    metric.value = 140;
    metric.unit = "kg";

    Techfeed__Milestone m;
    techfeed__milestone__init (&m);
    m.id = "change-4-far-side-landing";
    m.has_sector = 1;
    m.sector = TECHFEED__SECTOR__SECTOR_SPACE;
    m.title = "Chang'e-4 makes the first soft landing on the far side of the Moon";
    m.summary = "First soft landing\non the far side.";
    m.n_organizations = 2;
    m.organizations = orgs;
    m.country = "CN";
    m.date = "2019-01-03";
    m.has_status = 1;
    m.status = TECHFEED__MILESTONE_STATUS__STATUS_ACHIEVED;
    m.n_metrics = 1;
    m.metrics = metrics;
    m.n_sources = 1;
    m.sources = sources;
    m.n_tags = 2;
    m.tags = tags;
    m.has_revision = 1;
    m.revision = 7;
    m.has_updated_at_ms = 1;
    m.updated_at_ms = 1795887738123;
    return tf_milestone_dup (&m); // heap copy the caller may change and free
}

void tf_fixture_change (Techfeed__ChangeEvent *ev, Techfeed__ChangeKind kind, uint64_t sequence)
{
    techfeed__change_event__init (ev);
    ev->epoch = "0123456789abcdef0123456789abcdef";
    ev->has_sequence = 1;
    ev->sequence = sequence;
    ev->has_kind = 1;
    ev->kind = kind;
    ev->has_sector = 1;
    ev->sector = TECHFEED__SECTOR__SECTOR_SPACE;
    ev->id = "change-4-far-side-landing";
    ev->has_revision = 1;
    ev->revision = 7;
}
