/* admin: placeholder until the admin API lands. */
#include "lb/admin.h"
#include "lb/runtime.h"

int admin_start(struct runtime *rt, char *err, size_t errlen)
{
    (void)rt;
    (void)err;
    (void)errlen;
    return 0;
}

void admin_stop(struct runtime *rt)
{
    (void)rt;
}
