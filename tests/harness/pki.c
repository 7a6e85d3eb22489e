/* harness/pki: a CA and certificates made by running the openssl tool.
 * Every certificate is a request (`openssl req -new`, which makes the key
 * too) signed by `openssl ca` (the root by itself, -selfsign; the
 * intermediate, CN "lb test intermediate CA", by the root) with -startdate
 * and -enddate, the one way OpenSSL 3.0's tool can
 * back-date a certificate or issue an expired one (`x509 -req -days`
 * cannot). The CA's database (index.txt, serial) and the copies `openssl
 * ca` keeps of what it signed live in the pki's directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness/internal.h"
#include "tests/harness/pki.h"

#define MAX_ARGS 40

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "harness_pki: cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_msg(fclose(f) == 0, "harness_pki: cannot write %s", path);
}

static void append_file(const char *dst, const char *src)
{
    char *text = harness_slurp(src);
    FILE *f = fopen(dst, "a");
    ck_assert_msg(f != NULL, "harness_pki: cannot write %s: %s", dst, strerror(errno));
    fputs(text, f);
    free(text);
    ck_assert_msg(fclose(f) == 0, "harness_pki: cannot write %s", dst);
}

/* Runs openssl with args (NULL-terminated, without "openssl"), its output
 * appended to p->log after the command line; fails the test unless it
 * exits 0. */
static void run(struct harness_pki *p, const char *const args[])
{
    const char *argv[MAX_ARGS + 2];
    char cmd[4096];
    size_t n = 0, used = (size_t)snprintf(cmd, sizeof(cmd), "openssl");
    argv[n++] = "openssl";
    for (size_t i = 0; args[i]; i++) {
        ck_assert_msg(n < MAX_ARGS + 1, "harness_pki: too many arguments");
        argv[n++] = args[i];
        if (used < sizeof(cmd))
            used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, " %s", args[i]);
    }
    argv[n] = NULL;

    FILE *log = fopen(p->log, "a");
    ck_assert_msg(log != NULL, "harness_pki: cannot write %s: %s", p->log, strerror(errno));
    fprintf(log, "$ %s\n", cmd);
    fclose(log);

    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "harness_pki: fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_APPEND);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0)
            _exit(126);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp("openssl", (char *const *)argv);
        dprintf(2, "exec openssl: %s\n", strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ck_assert_msg(errno == EINTR, "harness_pki: waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ck_abort_msg("harness_pki: `%s` failed (%s %d); end of %s:\n%s", cmd,
                     WIFEXITED(status) ? "exit" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), p->log,
                     harness_log_tail(p->log));
}

/* now + days days + secs seconds as `openssl ca` wants it: YYYYMMDDHHMMSSZ. */
static const char *ca_time(int days, long secs)
{
    time_t t = time(NULL) + (time_t)days * 86400 + secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y%m%d%H%M%SZ", &tm);
    return harness_strf("%s", buf);
}

static const char ca_cnf[] = "[ca]\n"
                             "default_ca = lb_ca\n"
                             "[lb_ca]\n"
                             "database = %s/index.txt\n"
                             "new_certs_dir = %s\n"
                             "serial = %s/serial\n"
                             "default_md = sha256\n"
                             "policy = lb_policy\n"
                             "unique_subject = no\n"
                             "email_in_dn = no\n"
                             "[lb_policy]\n"
                             "commonName = supplied\n";

void harness_pki_init(struct harness_pki *p)
{
    memset(p, 0, sizeof(*p));
    const char *base = harness_dir()[0] ? harness_dir() : "/tmp";
    snprintf(p->dir, sizeof(p->dir), "%s/pki-XXXXXX", base);
    ck_assert_msg(mkdtemp(p->dir) != NULL, "harness_pki: mkdtemp %s: %s", p->dir, strerror(errno));
    snprintf(p->ca_cert, sizeof(p->ca_cert), "%s/ca.pem", p->dir);
    snprintf(p->ca_key, sizeof(p->ca_key), "%s/ca.key", p->dir);
    snprintf(p->int_cert, sizeof(p->int_cert), "%s/int.pem", p->dir);
    snprintf(p->int_key, sizeof(p->int_key), "%s/int.key", p->dir);
    snprintf(p->log, sizeof(p->log), "%s/openssl.log", p->dir);
    snprintf(p->cnf, sizeof(p->cnf), "%s/ca.cnf", p->dir);
    write_text(p->log, "");
    write_text(harness_strf("%s/index.txt", p->dir), "");
    write_text(harness_strf("%s/serial", p->dir), "1000\n");
    write_text(p->cnf, harness_strf(ca_cnf, p->dir, p->dir, p->dir));
    write_text(harness_strf("%s/ca.ext", p->dir), "[v3]\n"
                                                  "basicConstraints = critical,CA:TRUE\n"
                                                  "keyUsage = critical,keyCertSign,cRLSign\n"
                                                  "subjectKeyIdentifier = hash\n"
                                                  "authorityKeyIdentifier = keyid\n");
    /* The root signs itself through `openssl ca -selfsign` so that it too
     * can start a day ago (a test's back-dated leaf then nests in it). */
    const char *csr = harness_strf("%s/ca.csr", p->dir);
    run(p, (const char *[]){"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", p->ca_key, "-out", csr, "-subj", "/CN=lb test CA",
                            NULL});
    run(p, (const char *[]){"ca",          "-batch",
                            "-notext",     "-selfsign",
                            "-config",     p->cnf,
                            "-keyfile",    p->ca_key,
                            "-in",         csr,
                            "-out",        p->ca_cert,
                            "-startdate",  ca_time(-1, 0),
                            "-enddate",    ca_time(3650, 0),
                            "-extfile",    harness_strf("%s/ca.ext", p->dir),
                            "-extensions", "v3",
                            NULL});
}

/* The intermediate CA, signed by the root, on first use. */
static void make_intermediate(struct harness_pki *p)
{
    if (p->has_int)
        return;
    const char *csr = harness_strf("%s/int.csr", p->dir);
    run(p, (const char *[]){"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", p->int_key, "-out", csr, "-subj",
                            "/CN=lb test intermediate CA", NULL});
    run(p, (const char *[]){"ca",
                            "-batch",
                            "-notext",
                            "-config",
                            p->cnf,
                            "-cert",
                            p->ca_cert,
                            "-keyfile",
                            p->ca_key,
                            "-in",
                            csr,
                            "-out",
                            p->int_cert,
                            "-startdate",
                            ca_time(-1, 0),
                            "-enddate",
                            ca_time(3650, 0),
                            "-extfile",
                            harness_strf("%s/ca.ext", p->dir),
                            "-extensions",
                            "v3",
                            NULL});
    p->has_int = true;
}

/* "a.test, IP:127.0.0.1" as an extension value: "DNS:a.test,IP:127.0.0.1". */
static const char *san_value(const char *sans)
{
    char *copy = harness_strf("%s", sans);
    const char *out = "";
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (len == 0)
            continue;
        bool ip = strncmp(tok, "IP:", 3) == 0;
        out = harness_strf("%s%s%s%s", out, out[0] ? "," : "", ip ? "" : "DNS:", tok);
    }
    return out;
}

const char *harness_pki_issue(struct harness_pki *p, const char *name,
                              const struct harness_cert_opts *o)
{
    static const struct harness_cert_opts defaults;
    if (!o)
        o = &defaults;
    ck_assert_msg(p->dir[0], "harness_pki_issue: the pki was freed");
    if (o->intermediate)
        make_intermediate(p);
    const char *pem = harness_strf("%s/%s.pem", p->dir, name);
    const char *key = harness_strf("%s/%s.key", p->dir, name);
    const char *csr = harness_strf("%s/%s.csr", p->dir, name);
    const char *crt = harness_strf("%s/%s.crt", p->dir, name);
    const char *ext = harness_strf("%s/%s.ext", p->dir, name);
    const char *subj = harness_strf("/CN=%s", o->cn ? o->cn : name);

    const char *sans = o->sans ? san_value(o->sans) : "";
    write_text(ext, harness_strf("[v3]\n"
                                 "basicConstraints = critical,CA:FALSE\n"
                                 "keyUsage = critical,digitalSignature,keyEncipherment\n"
                                 "extendedKeyUsage = serverAuth,clientAuth\n"
                                 "subjectKeyIdentifier = hash\n"
                                 "authorityKeyIdentifier = keyid\n"
                                 "%s%s%s",
                                 sans[0] ? "subjectAltName = " : "", sans, sans[0] ? "\n" : ""));
    if (o->rsa)
        run(p, (const char *[]){"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                                "-out", csr, "-subj", subj, NULL});
    else
        run(p,
            (const char *[]){"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                             "-nodes", "-keyout", key, "-out", csr, "-subj", subj, NULL});
    int not_after = o->not_after_days ? o->not_after_days : 365;
    run(p, (const char *[]){"ca",
                            "-batch",
                            "-notext",
                            "-config",
                            p->cnf,
                            "-cert",
                            o->intermediate ? p->int_cert : p->ca_cert,
                            "-keyfile",
                            o->intermediate ? p->int_key : p->ca_key,
                            "-in",
                            csr,
                            "-out",
                            crt,
                            "-startdate",
                            ca_time(o->not_before_days, -60),
                            "-enddate",
                            ca_time(not_after, 0),
                            "-extfile",
                            ext,
                            "-extensions",
                            "v3",
                            NULL});
    write_text(pem, "");
    append_file(pem, crt);
    if (o->intermediate)
        append_file(pem, p->int_cert);
    return pem;
}

const char *harness_pki_key(const char *pem)
{
    size_t len = strlen(pem);
    ck_assert_msg(len > 4 && strcmp(pem + len - 4, ".pem") == 0,
                  "harness_pki_key: %s does not end in .pem", pem);
    return harness_strf("%.*s.key", (int)(len - 4), pem);
}

void harness_pki_free(struct harness_pki *p)
{
    if (p->dir[0])
        harness_remove_tree(p->dir);
    memset(p, 0, sizeof(*p));
}
