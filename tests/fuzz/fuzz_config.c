/* fuzz_config: config_load() (config/config.h) on any text. The loader reads
 * a regular file, so each input is written to one temporary file, created
 * at the first run and rewritten for every input. The contract checked: 0
 * with a config (freed again: a leak fails the run), or -1 with no config
 * and a one-line error that names the file. The loader never looks a name
 * up (backend host names are resolved later, by lb/names.c), so a run
 * never reaches DNS. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char path[64];
static int fd = -1;

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        snprintf(path, sizeof(path), "/tmp/lb-fuzz-config-%ld.json", (long)getpid());
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            perror(path);
            abort();
        }
        atexit(remove_file);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();

    struct lb_config *cfg = NULL;
    char err[1024] = "";
    int rc = config_load(path, &cfg, err, sizeof(err));
    if (rc == 0) {
        if (!cfg)
            __builtin_trap();
        config_free(cfg);
    } else {
        if (rc != -1 || cfg || strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n'))
            __builtin_trap();
    }
    return 0;
}
