/* test_etcd_msg: the etcd v3 gateway's JSON (lb/proto/etcd_msg.h): the
 * request bodies byte for byte, answers as etcd 3.4 wrote them (range,
 * watch created / events / compacted, put, both error shapes), and
 * hostile answers: bad base64, wrong types, oversized keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "lb/proto/etcd_msg.h"

/* base64("/lb/prod/") and base64("/lb/prod0"): the range of the prefix. */
#define PREFIX_B64 "L2xiL3Byb2Qv"
#define END_B64 "L2xiL3Byb2Qw"

static void parse_ok(const char *text, enum etcd_msg_kind kind, struct etcd_msg *m)
{
    char err[256] = "";
    int rc = etcd_msg_parse(text, strlen(text), kind, m, err, sizeof(err));
    ck_assert_msg(rc == 0, "parse failed: %s\n%s", err, text);
}

static void parse_bad(const char *text, enum etcd_msg_kind kind, const char *want)
{
    struct etcd_msg m;
    char err[256] = "";
    int rc = etcd_msg_parse(text, strlen(text), kind, &m, err, sizeof(err));
    etcd_msg_free(&m);
    ck_assert_msg(rc == -1, "parsed: %s", text);
    ck_assert_str_eq(err, want);
}

START_TEST(request_bodies)
{
    char *b = etcd_range_body("/lb/prod/", 0);
    ck_assert_str_eq(b, "{\"key\":\"" PREFIX_B64 "\",\"range_end\":\"" END_B64 "\"}");
    free(b);
    b = etcd_range_body("/lb/prod/", 42);
    ck_assert_str_eq(b, "{\"revision\":\"42\",\"key\":\"" PREFIX_B64 "\",\"range_end\":\"" END_B64
                        "\"}");
    free(b);
    b = etcd_watch_body("/lb/prod/", 7);
    ck_assert_str_eq(b, "{\"create_request\":{\"start_revision\":\"7\",\"progress_notify\":true,"
                        "\"key\":\"" PREFIX_B64 "\",\"range_end\":\"" END_B64 "\"}}");
    free(b);
    b = etcd_put_body("/lb/prod/state/app/b1", "{\"state\": \"drain\"}", 18);
    ck_assert_str_eq(b, "{\"key\":\"L2xiL3Byb2Qvc3RhdGUvYXBwL2Ix\",\"value\":"
                        "\"eyJzdGF0ZSI6ICJkcmFpbiJ9\"}");
    free(b);
    /* A prefix ending in 0xff: its end raises the byte before. */
    b = etcd_range_body("a\xff", 0);
    ck_assert_str_eq(b, "{\"key\":\"Yf8=\",\"range_end\":\"Yg==\"}");
    free(b);
}
END_TEST

/* What etcd 3.4.23 answered to a range over /lb/prod/ holding one key. */
START_TEST(range_answer)
{
    struct etcd_msg m;
    parse_ok("{\"header\":{\"cluster_id\":\"9827810879158008203\",\"member_id\":"
             "\"16686299509184719385\",\"revision\":\"2\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":"
             "\"L2xiL3Byb2QvcG9vbHMvYXBw\",\"create_revision\":\"2\",\"mod_revision\":\"2\","
             "\"version\":\"1\",\"value\":\"eyJuYW1lIjoiYXBwIiwiYmFja2VuZHMiOlt7ImFkZHJlc3MiOiIx"
             "MjcuMC4wLjE6OTAwMSJ9XX0=\"}],\"count\":\"1\"}",
             ETCD_RANGE, &m);
    ck_assert_int_eq(m.revision, 2);
    ck_assert_uint_eq(m.nkvs, 1);
    ck_assert_str_eq(m.kvs[0].key, "/lb/prod/pools/app");
    ck_assert_uint_eq(m.kvs[0].key_len, 18);
    ck_assert_str_eq(m.kvs[0].value,
                     "{\"name\":\"app\",\"backends\":[{\"address\":\"127.0.0.1:9001\"}]}");
    ck_assert_int_eq(m.kvs[0].mod_revision, 2);
    ck_assert(!m.kvs[0].deleted && !m.more && m.code == 0);
    etcd_msg_free(&m);

    /* Empty: no "kvs" at all; an empty value: no "value". */
    parse_ok("{\"header\":{\"revision\":\"9\"}}", ETCD_RANGE, &m);
    ck_assert_int_eq(m.revision, 9);
    ck_assert_uint_eq(m.nkvs, 0);
    etcd_msg_free(&m);
    parse_ok("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"3\"}],"
             "\"more\":true}",
             ETCD_RANGE, &m);
    ck_assert_str_eq(m.kvs[0].key, "a");
    ck_assert_str_eq(m.kvs[0].value, "");
    ck_assert_uint_eq(m.kvs[0].value_len, 0);
    ck_assert(m.more);
    etcd_msg_free(&m);
}
END_TEST

/* A watch's stream as etcd 3.4.23 wrote it: created, a PUT, a DELETE, and
 * the cancel of a watch whose start revision was compacted. */
START_TEST(watch_messages)
{
    struct etcd_msg m;
    parse_ok("{\"result\":{\"header\":{\"cluster_id\":\"9827810879158008203\",\"revision\":\"2\","
             "\"raft_term\":\"2\"},\"created\":true}}",
             ETCD_WATCH, &m);
    ck_assert(m.created && !m.canceled);
    ck_assert_int_eq(m.revision, 2);
    ck_assert_uint_eq(m.nkvs, 0);
    etcd_msg_free(&m);

    parse_ok("{\"result\":{\"header\":{\"revision\":\"3\"},\"events\":[{\"kv\":{\"key\":"
             "\"L2xiL3Byb2Qvc3RhdGUvYXBwL2Ix\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
             "\"version\":\"1\",\"value\":\"eyJzdGF0ZSI6ImRyYWluIn0=\"}},{\"type\":\"DELETE\","
             "\"kv\":{\"key\":\"L2xiL3Byb2Qvc3RhdGUvYXBwL2Ix\",\"mod_revision\":\"4\"},"
             "\"prev_kv\":{\"key\":\"L2xiL3Byb2Qvc3RhdGUvYXBwL2Ix\",\"value\":\"e30=\"}}]}}",
             ETCD_WATCH, &m);
    ck_assert_uint_eq(m.nkvs, 2);
    ck_assert_str_eq(m.kvs[0].key, "/lb/prod/state/app/b1");
    ck_assert_str_eq(m.kvs[0].value, "{\"state\":\"drain\"}");
    ck_assert(!m.kvs[0].deleted);
    ck_assert_int_eq(m.kvs[0].mod_revision, 3);
    ck_assert_str_eq(m.kvs[1].key, "/lb/prod/state/app/b1");
    ck_assert(m.kvs[1].deleted && m.kvs[1].value == NULL);
    ck_assert_int_eq(m.kvs[1].mod_revision, 4);
    etcd_msg_free(&m);

    parse_ok("{\"result\":{\"header\":{\"cluster_id\":\"9827810879158008203\",\"raft_term\":\"2\"},"
             "\"canceled\":true,\"compact_revision\":\"4\"}}",
             ETCD_WATCH, &m);
    ck_assert(m.canceled && !m.created);
    ck_assert_int_eq(m.compact_revision, 4);
    ck_assert_int_eq(m.revision, 0);
    etcd_msg_free(&m);

    parse_ok("{\"result\":{\"canceled\":true,\"cancel_reason\":\"etcdserver: no leader\"}}",
             ETCD_WATCH, &m);
    ck_assert(m.canceled);
    ck_assert_str_eq(m.error, "etcdserver: no leader");
    etcd_msg_free(&m);
}
END_TEST

START_TEST(error_answers)
{
    struct etcd_msg m;
    parse_ok("{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"message\":"
             "\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}",
             ETCD_RANGE, &m);
    ck_assert_int_eq(m.code, ETCD_CODE_OUT_OF_RANGE);
    ck_assert_str_eq(m.error, "etcdserver: mvcc: required revision has been compacted");
    etcd_msg_free(&m);
    parse_ok("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
             "leader\",\"http_status\":\"Service Unavailable\"}}",
             ETCD_WATCH, &m);
    ck_assert_int_eq(m.code, ETCD_CODE_UNAVAILABLE);
    ck_assert_str_eq(m.error, "etcdserver: no leader");
    etcd_msg_free(&m);
    /* Its text is made printable. */
    parse_ok("{\"error\":\"x\",\"message\":\"a\\n\\\"b\\u00e9\",\"code\":2}", ETCD_PUT, &m);
    ck_assert_str_eq(m.error, "a\\x0a\\x22b\\xc3\\xa9");
    etcd_msg_free(&m);
    parse_ok("{\"header\":{\"revision\":\"12\"}}", ETCD_PUT, &m);
    ck_assert_int_eq(m.revision, 12);
    ck_assert_int_eq(m.code, 0);
    etcd_msg_free(&m);
}
END_TEST

START_TEST(hostile_answers)
{
    parse_bad("", ETCD_RANGE, "not JSON");
    parse_bad("[1]", ETCD_RANGE, "not a JSON object");
    parse_bad("{\"a\":1,\"a\":2}", ETCD_RANGE, "not JSON");
    parse_bad("{\"header\":[]}", ETCD_RANGE, "header is not an object");
    parse_bad("{\"header\":{\"revision\":\"-1\"}}", ETCD_RANGE,
              "header.revision is not an integer");
    parse_bad("{\"header\":{\"revision\":\"99999999999999999999\"}}", ETCD_RANGE,
              "header.revision is not an integer");
    parse_bad("{\"kvs\":{}}", ETCD_RANGE, "the list of keys is not an array");
    parse_bad("{\"kvs\":[1]}", ETCD_RANGE, "a key is not an object");
    parse_bad("{\"kvs\":[{\"value\":\"YQ==\"}]}", ETCD_RANGE, "a key is missing");
    parse_bad("{\"kvs\":[{\"key\":5}]}", ETCD_RANGE, "a key is missing");
    /* A half-parsed list is freed (the sanitizer build sees any leak). */
    parse_bad("{\"kvs\":[{\"key\":\"YQ==\"},{\"key\":\"Yg==\",\"mod_revision\":\"x\"}]}",
              ETCD_RANGE, "a mod_revision is not an integer");
    parse_bad("{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":true}]}", ETCD_RANGE,
              "a mod_revision is not an integer");
    parse_bad("{\"more\":1}", ETCD_RANGE, "more is not a boolean");
    parse_bad("{}", ETCD_WATCH, "no result object");
    parse_bad("{\"result\":{\"created\":\"yes\"}}", ETCD_WATCH,
              "a field of the watch result has the wrong type");
    parse_bad("{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":\"YQ==\"}}]}}",
              ETCD_WATCH, "an event is not a PUT or a DELETE");

    /* A key of ETCD_KEY_MAX bytes passes, one more does not. */
    size_t n = ETCD_KEY_MAX + 3;
    char *raw = malloc(n), *text = malloc(2 * n + 64);
    memset(raw, 'k', n);
    for (size_t cut = ETCD_KEY_MAX; cut <= ETCD_KEY_MAX + 3; cut += 3) {
        /* "kkk" is "a2tr" in base64: whole groups only. */
        char *b = text + sprintf(text, "{\"kvs\":[{\"key\":\"");
        for (size_t i = 0; i < cut / 3; i++)
            b += sprintf(b, "a2tr");
        if (cut % 3 == 1)
            b += sprintf(b, "aw==");
        sprintf(b, "\"}]}");
        struct etcd_msg m;
        char err[256];
        int rc = etcd_msg_parse(text, strlen(text), ETCD_RANGE, &m, err, sizeof(err));
        ck_assert_msg(rc == 0, "%zu bytes: %s", cut, err);
        if (cut == ETCD_KEY_MAX) {
            ck_assert_ptr_null(m.kvs[0].bad);
            ck_assert_uint_eq(m.kvs[0].key_len, ETCD_KEY_MAX);
        } else {
            ck_assert_str_eq(m.kvs[0].bad, "the key is empty, not base64 or over 1024 bytes");
            ck_assert_str_eq(m.kvs[0].key, "");
        }
        etcd_msg_free(&m);
    }
    free(raw);
    free(text);
}
END_TEST

/* A key or value that cannot be read is one bad kv; the rest of the
 * answer is read. */
START_TEST(bad_kvs)
{
    static const char text[] = "{\"header\":{\"revision\":\"9\"},\"kvs\":["
                               "{\"key\":\"YQ\",\"value\":\"eA==\",\"mod_revision\":\"2\"},"
                               "{\"key\":\"\",\"value\":\"eA==\"},"
                               "{\"key\":\"Y=Q=\"},"
                               "{\"key\":\"Yg==\",\"value\":\"@@@@\",\"mod_revision\":\"3\"},"
                               "{\"key\":\"Yw==\",\"value\":5},"
                               "{\"key\":\"ZA==\",\"value\":\"eQ==\",\"mod_revision\":\"4\"}]}";
    struct etcd_msg m;
    char err[256];
    ck_assert_int_eq(etcd_msg_parse(text, strlen(text), ETCD_RANGE, &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m.nkvs, 6);
    const char *key_bad = "the key is empty, not base64 or over 1024 bytes";
    const char *value_bad = "the value is not base64 or over 1 MiB";
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(m.kvs[i].bad, key_bad);
        ck_assert_str_eq(m.kvs[i].key, "");
    }
    ck_assert_int_eq(m.kvs[0].mod_revision, 2);
    ck_assert_str_eq(m.kvs[3].key, "b");
    ck_assert_str_eq(m.kvs[3].bad, value_bad);
    ck_assert_ptr_null(m.kvs[3].value);
    ck_assert_int_eq(m.kvs[3].mod_revision, 3);
    ck_assert_str_eq(m.kvs[4].bad, value_bad);
    ck_assert_ptr_null(m.kvs[5].bad);
    ck_assert_str_eq(m.kvs[5].value, "y");
    etcd_msg_free(&m);
}
END_TEST

static Suite *etcd_msg_suite(void)
{
    Suite *s = suite_create("etcd_msg");
    TCase *tc = tcase_create("etcd_msg");
    tcase_add_test(tc, request_bodies);
    tcase_add_test(tc, range_answer);
    tcase_add_test(tc, watch_messages);
    tcase_add_test(tc, error_answers);
    tcase_add_test(tc, bad_kvs);
    tcase_add_test(tc, hostile_answers);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(etcd_msg_suite)
