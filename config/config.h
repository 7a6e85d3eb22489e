/* config: a JSON file turned into one validated, immutable struct lb_config.
 * Knows nothing of sockets or libevent. `lb -t`, start and reload all call
 * config_load(); defaults live in config_load.c and nowhere else. */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

enum lb_log_level { LB_LOG_ERROR, LB_LOG_WARN, LB_LOG_INFO, LB_LOG_DEBUG };
enum lb_log_format { LB_LOG_TEXT, LB_LOG_JSON };

enum lb_strategy {
    LB_STRATEGY_ROUNDROBIN,
    LB_STRATEGY_WEIGHTED,
    LB_STRATEGY_LEASTCONN,
    LB_STRATEGY_IPHASH,
};

enum lb_mode { LB_MODE_TCP, LB_MODE_HTTP };

#define LB_WEIGHT_MAX 256
#define LB_NAME_MAX 64
#define LB_MAGLEV_DEFAULT_SIZE 65537

/* The longest host name taken, in text (RFC 1035 2.3.4). */
#define CONFIG_HOST_MAX 253

struct lb_backend_conf {
    char *name;    /* NULL when the file gives none */
    char *address; /* as written, e.g. "127.0.0.1:9001" or "[::1]:9002" */
    char *id;      /* name if given, else address: the backend's identity in its pool */
    /* The address; for a host name ("app1.internal:8080") host and port,
     * and addr is filled once lb's resolver answered (lb/names.c: at start
     * and at reload, before the config is used; addrlen 0 until then). */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *host;               /* lower-case; NULL for an IP address */
    unsigned short port;      /* with host */
    char *where;              /* with host: "file:line:col: pools[0].backends[1].address" */
    size_t entry;             /* its index in the file's "backends" array */
    unsigned weight;          /* 0..LB_WEIGHT_MAX; 0 gets no new connections */
    unsigned max_connections; /* sessions (http: requests) at once; 0: no limit */
};

enum lb_check_type { LB_CHECK_NONE, LB_CHECK_TCP, LB_CHECK_HTTP, LB_CHECK_HTTPS };

/* TLS settings are kept as written (file names made absolute against the
 * config file's folder); the contexts are built and checked by the core
 * (lb/tls_conf.c: certificates readable and matching their keys, versions
 * and cipher strings known to OpenSSL), at start, reload and `lb -t`. Each
 * block's "where" is "file:line:col: json.path" of its object, the prefix
 * of those errors. */
struct lb_tls_cert_conf {
    char *cert; /* PEM: the certificate, then its chain */
    char *key;  /* PEM: its private key */
};

/* A listener's TLS termination ("tls"), or the admin API's; enabled 0
 * without the key. */
struct lb_tls_server_conf {
    int enabled;
    struct lb_tls_cert_conf *certs; /* certs[0] is the default (no SNI match) */
    size_t ncerts;
    char *min_version;            /* "TLSv1.2" (default) or "TLSv1.3" */
    char *ciphers, *ciphersuites; /* NULL: OpenSSL's defaults */
    char **alpn;                  /* protocol names in preference order */
    size_t nalpn;
    unsigned handshake_timeout_ms;
    char *where;
};

/* A pool's TLS towards its backends ("tls"), also used by its https
 * checks; enabled 0 without the key or with "enabled": false. */
struct lb_tls_client_conf {
    int enabled;
    int verify;        /* the backend's certificate and server_name (default on) */
    char *ca;          /* NULL: the system's trusted CAs */
    char *server_name; /* SNI and the name verified; NULL: none */
    char *cert, *key;  /* an optional client certificate */
    char *min_version, *ciphers, *ciphersuites;
    char *where;
};

/* The PROXY protocol header a pool writes to each backend connection. */
enum lb_proxy_version { LB_PROXY_OFF, LB_PROXY_V1, LB_PROXY_V2 };

/* A pool's active health check ("health_check"); type NONE without one. */
struct lb_health_conf {
    enum lb_check_type type;
    unsigned interval_ms;
    unsigned timeout_ms;
    unsigned rise; /* consecutive successes that bring a down backend up */
    unsigned fall; /* consecutive failures that take an up backend down */
    unsigned port; /* 0: the backend's own port */
    /* http only: */
    char *method;                    /* "GET" */
    char *path;                      /* "/" */
    char *host;                      /* Host header; NULL: the backend's address */
    unsigned status_min, status_max; /* accepted status range, e.g. 200..399 */
    char *expect_body;               /* NULL: body not checked; else a substring it must hold */
    /* Each check connection starts with a PROXY header of this version
     * (the pool's send_proxy; a LOCAL one); OFF: none. */
    enum lb_proxy_version send_proxy;
    /* https only: the check talks TLS with the pool's "tls" settings, the
     * certificate verified as this says (the check's "verify"; default:
     * the pool's, on without a pool "tls"). */
    int verify;
};

/* Passive ejection from real traffic ("passive"); max_failures 0: off. */
struct lb_passive_conf {
    unsigned max_failures; /* consecutive failed connects that eject a backend */
    unsigned ejection_ms;  /* how long, without active checks */
};

/* TCP keepalive on lb's sockets of a session ("tcp_keepalive"): finds a
 * peer that vanished without a reset. enabled 0 without the key: the OS
 * default (off). */
struct lb_keepalive_conf {
    int enabled;
    unsigned idle_s;     /* TCP_KEEPIDLE: seconds without traffic before the first probe */
    unsigned interval_s; /* TCP_KEEPINTVL: seconds between unanswered probes */
    unsigned count;      /* TCP_KEEPCNT: unanswered probes that end the connection */
};

/* A backend entry with "dns" (DNS discovery, lb/discovery.c): the
 * name's records are backends, asked again and again. */
enum lb_dns_type { LB_DNS_A, LB_DNS_AAAA, LB_DNS_SRV };

struct lb_dns_conf {
    char *name; /* lower-case, no trailing dot */
    enum lb_dns_type type;
    unsigned port;            /* A and AAAA: every backend's; SRV: 0, the records give it */
    unsigned weight;          /* A and AAAA: every backend's; SRV: the records give it */
    unsigned max_connections; /* every backend's; 0: no limit */
    unsigned refresh_ms;      /* asked again after max(refresh_ms, the answer's TTL) */
    char *resolvers;          /* c-ares' CSV ("127.0.0.1:8600,[::1]:53"); NULL: the system's */
    /* Identity across reloads: an entry with the same key in the pool of
     * the same name keeps its last answer ("SRV _web._tcp.x 0 @127.0.0.1:53"). */
    char *key;
    char *where; /* "file:line:col: pools[0].backends[2]" */
};

struct lb_pool_conf {
    char *name;
    enum lb_strategy strategy;
    unsigned connect_timeout_ms;
    unsigned retries;         /* extra backends tried after a failed connect */
    unsigned hash_table_size; /* iphash: Maglev lookup table size, a prime */
    struct lb_health_conf health;
    struct lb_passive_conf passive;
    unsigned slow_start_ms;             /* 0: a backend coming up gets its full weight at once */
    struct lb_keepalive_conf keepalive; /* on the sockets to backends (not health checks) */
    enum lb_proxy_version send_proxy;   /* header before the client's bytes; OFF: none */
    /* http mode: idle backend connections kept for reuse ("keepalive"). */
    unsigned reuse_max_idle;        /* per backend; 0: every request gets a fresh connection */
    unsigned reuse_idle_timeout_ms; /* an idle connection is closed after it */
    unsigned response_timeout_ms;   /* http mode: the response head must arrive within it (504) */
    struct lb_tls_client_conf tls;  /* TLS to the backends */
    /* Sessions waiting while every available backend is at its
     * max_connections ("queue"): at most queue_max (0: none wait, refused
     * at once), each for at most queue_timeout_ms. */
    unsigned queue_max;
    unsigned queue_timeout_ms;
    struct lb_backend_conf *backends; /* the entries with "address" */
    size_t nbackends;
    struct lb_dns_conf *dns; /* the entries with "dns" */
    size_t ndns;
    /* config_merge(): the pool is a document's (from etcd), and whether
     * the file has one of the same name, which it replaced. */
    int from_doc;
    int replaces_file;
};

/* A tcp listener's SNI route ("sni_routes"): clients whose TLS ClientHello
 * names server_name go to pool, undecrypted. */
struct lb_sni_route_conf {
    char *server_name; /* lowercase; "*.example.com" matches one more label */
    char *pool;
    size_t pool_index;
};

struct lb_listener_conf {
    char *name;
    char *listen; /* as written */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    enum lb_mode mode;
    char *pool;        /* pool name */
    size_t pool_index; /* index into lb_config.pools */
    unsigned max_connections;
    unsigned idle_timeout_ms;           /* 0: no idle timeout */
    struct lb_keepalive_conf keepalive; /* on accepted client sockets */
    int splice;                         /* bulk flows may move through splice(2) pipes */
    int reuse_port;                     /* SO_REUSEPORT: other processes may bind it too */
    int accept_proxy; /* each client starts with a PROXY v1 or v2 header, which says who it is */
    unsigned request_timeout_ms; /* what lb reads before the pick (the PROXY header; in
                                  * http mode each request head) must arrive within it */
    /* http mode: */
    unsigned max_header_bytes;     /* a request head longer than this is a 431 */
    int x_real_ip;                 /* also send X-Real-IP */
    int forwarded;                 /* also send RFC 7239 Forwarded */
    struct lb_tls_server_conf tls; /* TLS termination */
    /* tcp mode without tls: the pool picked by the ClientHello's server
     * name; the listener's pool for none or no match. */
    struct lb_sni_route_conf *sni_routes;
    size_t nsni_routes;
};

/* The admin API listener ("admin"); enabled false without the key. */
struct lb_admin_conf {
    int enabled;
    char *listen; /* as written */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *token;                   /* NULL: no token required */
    unsigned max_connections;      /* admin connections open at once; more are closed */
    unsigned request_timeout_ms;   /* a whole request (head and body) must arrive within it */
    struct lb_tls_server_conf tls; /* HTTPS; one certificate */
};

/* "fleet": pools kept in etcd, followed live (lb/fleet.c, docs/fleet.md). */
#define LB_FLEET_ENDPOINTS_MAX 16
#define LB_FLEET_PREFIX_MAX 256

struct lb_fleet_endpoint {
    char *url; /* as written: "http://127.0.0.1:2379" or "https://..." */
    struct sockaddr_storage addr;
    socklen_t addrlen; /* 0 for a host name, resolved by the fleet (lb/fleet.c) */
    char *authority;   /* the Host header: "127.0.0.1:2379", "etcd1.internal:2379" */
    char *host;        /* the address without brackets or port ("::1"), or the host name
                        * (lower-case): TLS's default name */
    int name;          /* host is a name to resolve */
    unsigned short port;
    int tls; /* https:// */
};

struct lb_fleet_conf {
    int enabled; /* 0 without the key */
    struct lb_fleet_endpoint *endpoints;
    size_t nendpoints;
    char *prefix;              /* ends with '/': pools under PREFIX "pools/<name>" */
    char *token;               /* sent as Authorization; NULL: none */
    unsigned timeout_ms;       /* each request to etcd, and its answer to the liveness probe */
    unsigned start_timeout_ms; /* how long the start waits for etcd's first answer */
    /* "tls": how https endpoints are verified (a pool's "tls" keys; its
     * server_name, when given, is checked for every endpoint, else each
     * endpoint's address); enabled when an endpoint is https. */
    struct lb_tls_client_conf tls;
};

/* A pool kept outside the file (the fleet: etcd's PREFIX"pools/<name>"),
 * in the same JSON shape as one of the file's "pools". */
struct config_doc {
    const char *source; /* for messages: "etcd /lb/prod/pools/web" */
    const char *name;   /* the pool's name: the key's last part */
    const char *text;
    size_t len;
};

struct lb_config {
    char *path; /* the file it was loaded from */
    char *text; /* the file's bytes as read (its BOM skipped), for config_merge() */
    size_t text_len;
    struct lb_fleet_conf fleet;
    /* With fleet on, a listener may name a pool the file does not have
     * (one from etcd): config_load() leaves it unlinked (pool_index is
     * npools), counted here, the first one named. config_merge() links
     * them all or fails. */
    size_t unlinked;
    char unlinked_pool[LB_NAME_MAX + 1];
    enum lb_log_level log_level;
    enum lb_log_format log_format;
    /* "log": {"access_log"}: the file access lines go to (absolute, made so
     * against the config file's folder); NULL: stderr. lb/access_log.c. */
    char *access_log;
    unsigned shutdown_grace_ms;
    unsigned max_connections; /* sessions of all listeners at once; 0: no limit */
    struct lb_listener_conf *listeners;
    size_t nlisteners;
    struct lb_pool_conf *pools;
    size_t npools;
    struct lb_admin_conf admin;
    /* "user" and "group": whom lb runs as once its sockets are bound and its
     * certificates read (lb/privileges.c). user NULL: lb stays who it is. */
    char *user;
    char *group; /* as written; NULL: the user's primary group */
    uid_t uid;
    gid_t gid;
    /* "resolvers": the DNS servers lb asks for backend host names and for
     * "dns" entries without their own, in c-ares' CSV form
     * ("127.0.0.1:53,[::1]:5353"); NULL: the system's (/etc/resolv.conf). */
    char *resolvers;
};

/* Loads and validates PATH, a regular file (anything else, a FIFO
 * included, is refused without blocking) of at most 16 MiB; a leading UTF-8
 * BOM is skipped. On success returns 0 and sets *out (free it with
 * config_free). On any error returns -1, leaves *out NULL and writes one
 * line "file:line:col: json.path: message" (or "file: message" when no
 * position applies) into err, with any text from the file escaped. Never
 * partially loads. */
int config_load(const char *path, struct lb_config **out, char *err, size_t errlen);
void config_free(struct lb_config *cfg);
/* base's file (its text as loaded, not read again) with docs' pools: a
 * document replaces the file's pool of its name or adds one. Every pool a
 * listener or SNI route names must now exist. 0 with *out, or -1 with
 * err: a document's fault as "SOURCE:line:col: json.path: message". */
int config_merge(const struct lb_config *base, const struct config_doc *docs, size_t ndocs,
                 struct lb_config **out, char *err, size_t errlen);
/* Checks one document alone as a pool of base's file would be: 0, or -1
 * with err as config_merge() would write it. */
int config_check_doc(const struct lb_config *base, const struct config_doc *doc, char *err,
                     size_t errlen);
/* lb --admin-listen ADDR: every later config_load (the start, lb -t, each
 * reload) takes ADDR for admin.listen, and enables the admin API with its
 * defaults when the file has no "admin". NULL: the file's own. */
void config_set_admin_listen(const char *listen);

const char *config_strategy_name(enum lb_strategy s);
const char *config_mode_name(enum lb_mode m);
const char *config_log_level_name(enum lb_log_level l);

/* config_parse_address() flags: "*:80" is taken (a listen address); a
 * host name is taken. */
#define CONFIG_ADDR_PASSIVE 1u
#define CONFIG_ADDR_NAME 2u
/* Parses "1.2.3.4:80", "[::1]:80", "localhost:80" (127.0.0.1, never
 * looked up), "*:80" (CONFIG_ADDR_PASSIVE) into addr: 0. With
 * CONFIG_ADDR_NAME, "host:80" copies host, lower-cased, into name
 * (CONFIG_HOST_MAX + 1 bytes) and its port into *port, addr untouched:
 * 1. Else -1 with a short reason in err. Nothing is looked up. */
int config_parse_address(const char *text, unsigned flags, struct sockaddr_storage *addr,
                         socklen_t *addrlen, char *name, unsigned short *port, char *err,
                         size_t errlen);
/* Sets the port of an AF_INET or AF_INET6 address. */
void config_address_set_port(struct sockaddr_storage *addr, unsigned short port);
/* 1 when a and b are the same address and port, 0 when one is the
 * wildcard of the other's family and port (bind() would refuse them side by
 * side), -1 when they can coexist. */
int config_address_clash(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* 1 for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104, else 0. */
int config_address_is_loopback(const struct sockaddr *sa);

/* Copies src into dst (cap bytes, always terminated) so it is safe inside a
 * one-line message: printable ASCII as is, \" \\ \n \r \t, every other byte
 * as \xNN, cut after max source bytes with "...". Returns dst. A dst of
 * max * 4 + 4 bytes always holds the whole result. */
char *config_text_escape(char *dst, size_t cap, const char *src, size_t max);

#endif
