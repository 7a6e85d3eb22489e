/* prom_check: a strict validator of the Prometheus text exposition format
 * 0.0.4 as lb writes it, and a lookup of one sample's value. Shared by the
 * metrics unit tests and the /metrics integration tests. */
#ifndef LB_TESTS_PROM_CHECK_H
#define LB_TESTS_PROM_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Checks every line of text (NUL-terminated): `# HELP name text` and
 * `# TYPE name counter|gauge|histogram` once per family, both before the
 * family's samples; samples `name{label="value",...} value [timestamp]` with
 * valid names, escapes and numbers; families not interleaved; no series
 * twice; counters not negative; each histogram series' buckets in rising le
 * order with non-decreasing counts, ending at le="+Inf", then _sum, then
 * _count equal to the +Inf bucket; the text ends with a newline. Lines
 * must not be empty and other comments are refused (lb writes neither).
 * true when valid; otherwise false with "line N: why: <line>" in err. */
bool prom_check(const char *text, char *err, size_t errlen);

/* The value of the sample whose name and labels are exactly series (e.g.
 * `lb_backend_connections_total{pool="app",backend="b1"}`, or `lb_up`), as
 * a double in *value. false when text has no such line. */
bool prom_value(const char *text, const char *series, double *value);

#endif
