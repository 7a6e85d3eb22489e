/* dashboard: the admin listener's live page (GET /), built into lb. Its
 * source is lb/admin/dashboard.html; the Makefile runs scripts/embed-dashboard
 * on it into $(BUILD)/gen/, which defines these. */
#ifndef LB_ADMIN_DASHBOARD_H
#define LB_ADMIN_DASHBOARD_H

#include <stddef.h>

/* The page, dashboard_html_len bytes of UTF-8 HTML (and a NUL after them). */
extern const char dashboard_html[];
extern const size_t dashboard_html_len;
/* Its Content-Security-Policy: only its own inline script and style (by
 * their SHA-256), fetches to its own origin, no framing. At most 1024
 * bytes. */
extern const char dashboard_csp[];

#endif
