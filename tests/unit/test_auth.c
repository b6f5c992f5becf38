/* test_auth.c: unit tests for shared/auth.c (EdDSA JWT verification, signing, scope rules). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "shared/auth.h"
#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"

#define T1 "1f359dd625e519a1a4e8d7509690f6fc"
#define T2 "aaaabbbbccccddddeeeeffff00001111"

/* Per-run fixture: two key pairs written as PEM files into a temporary directory. */
typedef struct Fixture {
    char dir[64];
    char priv_a[128], pub_a[128], priv_b[128], pub_b[128];
    EVP_PKEY *key_a, *key_b;
} Fixture;

static EVP_PKEY *gen_key(void)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
    EVP_PKEY_CTX_free(ctx);
    return k;
}

static void write_pem(const char *path, EVP_PKEY *k, bool priv, const char *mode)
{
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    if (priv)
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    Fixture *fx = calloc(1, sizeof(*fx));
    str_copy(fx->dir, sizeof(fx->dir), "/tmp/test_auth.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    fx->key_a = gen_key();
    fx->key_b = gen_key();
    str_printf(fx->priv_a, sizeof(fx->priv_a), "%s/a.key", fx->dir);
    str_printf(fx->pub_a, sizeof(fx->pub_a), "%s/a.pub", fx->dir);
    str_printf(fx->priv_b, sizeof(fx->priv_b), "%s/b.key", fx->dir);
    str_printf(fx->pub_b, sizeof(fx->pub_b), "%s/b.pub", fx->dir);
    write_pem(fx->priv_a, fx->key_a, true, "w");
    write_pem(fx->pub_a, fx->key_a, false, "w");
    write_pem(fx->priv_b, fx->key_b, true, "w");
    write_pem(fx->pub_b, fx->key_b, false, "w");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    Fixture *fx = *state;
    char cmd[128];
    str_printf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        return -1;
    EVP_PKEY_free(fx->key_a);
    EVP_PKEY_free(fx->key_b);
    free(fx);
    return 0;
}

static Auth *load_auth(const char *path)
{
    Auth *a = NULL;
    Err err = {0};
    if (!auth_new_from_file(path, &a, &err))
        fail_msg("auth_new_from_file(%s): %s", path, err.msg);
    return a;
}

static AuthSigner *load_signer(const char *path)
{
    AuthSigner *s = NULL;
    Err err = {0};
    if (!auth_signer_new_from_file(path, &s, &err))
        fail_msg("auth_signer_new_from_file(%s): %s", path, err.msg);
    return s;
}

/* not inlined: gcc 12 at -O2 mistakes the returned heap token for a pointer into the local `jwt`
 * (a false -Wdangling-pointer in the callers) */
__attribute__((noinline)) static char *sign(AuthSigner *s, AuthScope scope, const char *tenant_hex,
                                            int64_t exp)
{
    TenantId t;
    Err err = {0};
    if (tenant_hex != NULL)
        assert_true(tenant_id_parse(tenant_hex, &t, &err));
    char *jwt = NULL;
    if (!auth_sign(s, scope, tenant_hex ? &t : NULL, exp, &jwt, &err))
        fail_msg("auth_sign: %s", err.msg);
    return jwt;
}

/* b64url: test-side encoder, so tokens with arbitrary headers and payloads can be forged. */
static void b64url(StrBuf *b, const char *data, size_t len)
{
    unsigned char tmp[4096];
    int n = EVP_EncodeBlock(tmp, (const unsigned char *)data, (int)len);
    for (int i = 0; i < n; i++) {
        char c = (char)tmp[i];
        if (c == '=')
            break;
        if (c == '+')
            c = '-';
        else if (c == '/')
            c = '_';
        strbuf_append(b, &c, 1);
    }
}

/* sign_raw: a token over arbitrary header and payload text, signed with k. */
static char *sign_raw(EVP_PKEY *k, const char *header, const char *payload)
{
    StrBuf b = STRBUF_INIT;
    b64url(&b, header, strlen(header));
    strbuf_append_str(&b, ".");
    b64url(&b, payload, strlen(payload));
    unsigned char sig[64];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)b.data, b.len), 1);
    EVP_MD_CTX_free(ctx);
    strbuf_append_str(&b, ".");
    b64url(&b, (const char *)sig, sig_len);
    return strbuf_detach(&b);
}

static void expect_verify_fail(const Auth *a, const char *jwt, ErrCode code, const char *needle)
{
    AuthClaims c;
    Err err = {0};
    bool ok = auth_verify(a, jwt, &c, &err);
    if (ok)
        fail_msg("token accepted but should fail: %s", jwt);
    assert_int_equal(err.code, code);
    if (needle != NULL && strstr(err.msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_sign_verify_round_trip(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    AuthSigner *s = load_signer(fx->priv_a);
    int64_t exp = (int64_t)time(NULL) + 3600;

    char *jwt = sign(s, AUTH_SCOPE_TENANT, T1, exp);
    AuthClaims c;
    Err err = {0};
    assert_true(auth_verify(a, jwt, &c, &err));
    assert_int_equal(c.scope, AUTH_SCOPE_TENANT);
    assert_true(c.has_tenant);
    char hex[ID_STR_SIZE];
    tenant_id_format(&c.tenant_id, hex);
    assert_string_equal(hex, T1);
    assert_int_equal(c.exp, exp);
    free(jwt);

    jwt = sign(s, AUTH_SCOPE_ADMIN, NULL, 0);
    assert_true(auth_verify(a, jwt, &c, &err));
    assert_int_equal(c.scope, AUTH_SCOPE_ADMIN);
    assert_false(c.has_tenant);
    assert_int_equal(c.exp, 0);
    /* three base64url parts, no padding */
    assert_null(strchr(jwt, '='));
    free(jwt);

    /* every real scope survives the round trip */
    for (int sc = AUTH_SCOPE_NONE + 1; sc < AUTH_SCOPE_COUNT; sc++) {
        jwt = sign(s, (AuthScope)sc, NULL, 0);
        assert_true(auth_verify(a, jwt, &c, &err));
        assert_int_equal(c.scope, sc);
        free(jwt);
    }
    /* scope none cannot be signed */
    jwt = NULL;
    assert_false(auth_sign(s, AUTH_SCOPE_NONE, NULL, 0, &jwt, &err));
    assert_null(jwt);

    auth_signer_free(s);
    auth_free(a);
}

static void test_tampered_payload(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    AuthSigner *s = load_signer(fx->priv_a);
    char *jwt = sign(s, AUTH_SCOPE_TENANT, T1, 0);

    /* swap in a payload claiming admin, keep header and signature */
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    StrBuf forged = STRBUF_INIT;
    strbuf_append(&forged, jwt, (size_t)(dot1 - jwt + 1));
    const char *admin = "{\"scope\":\"admin\"}";
    b64url(&forged, admin, strlen(admin));
    strbuf_append_str(&forged, dot2);
    expect_verify_fail(a, forged.data, ERR_FORBIDDEN, "token signature invalid");
    strbuf_finish(&forged);

    /* flip one character of the signature */
    char *bad = xstrdup(jwt);
    size_t n = strlen(bad);
    bad[n - 5] = bad[n - 5] == 'A' ? 'B' : 'A';
    expect_verify_fail(a, bad, ERR_FORBIDDEN, "signature");
    free(bad);

    /* truncated signature */
    bad = xstrdup(jwt);
    bad[n - 4] = '\0';
    AuthClaims c;
    Err err = {0};
    assert_false(auth_verify(a, bad, &c, &err));
    free(bad);

    free(jwt);
    auth_signer_free(s);
    auth_free(a);
}

static void test_alg_none_and_others_rejected(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    const char *payload = "{\"scope\":\"admin\"}";

    /* "alg":"none" with an empty signature part: never accepted */
    StrBuf b = STRBUF_INIT;
    const char *none = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    b64url(&b, none, strlen(none));
    strbuf_append_str(&b, ".");
    b64url(&b, payload, strlen(payload));
    strbuf_append_str(&b, ".");
    expect_verify_fail(a, b.data, ERR_UNAUTHORIZED, NULL);
    /* ... and with some signature bytes attached it is refused for its algorithm */
    strbuf_append_str(&b, "AAAA");
    expect_verify_fail(a, b.data, ERR_UNAUTHORIZED, "algorithm 'none'");
    strbuf_finish(&b);

    /* even correctly signed with our key, another alg in the header is refused */
    static const char *headers[] = {
        "{\"alg\":\"none\"}",  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"eddsa\"}", "{\"typ\":\"JWT\"}",
        "{\"alg\":1}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *jwt = sign_raw(fx->key_a, headers[i], payload);
        expect_verify_fail(a, jwt, ERR_UNAUTHORIZED, "algorithm");
        free(jwt);
    }
    /* control: the same construction with EdDSA passes */
    char *jwt = sign_raw(fx->key_a, "{\"alg\":\"EdDSA\"}", payload);
    AuthClaims c;
    Err err = {0};
    assert_true(auth_verify(a, jwt, &c, &err));
    assert_int_equal(c.scope, AUTH_SCOPE_ADMIN);
    free(jwt);
    auth_free(a);
}

static void test_wrong_key(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    AuthSigner *sb = load_signer(fx->priv_b);
    char *jwt = sign(sb, AUTH_SCOPE_ADMIN, NULL, 0);
    expect_verify_fail(a, jwt, ERR_FORBIDDEN, "token signature invalid");
    free(jwt);
    auth_signer_free(sb);
    auth_free(a);
}

static void test_multiple_keys(void **state)
{
    Fixture *fx = *state;
    AuthSigner *sa = load_signer(fx->priv_a);
    AuthSigner *sb = load_signer(fx->priv_b);
    char *ja = sign(sa, AUTH_SCOPE_ADMIN, NULL, 0);
    char *jb = sign(sb, AUTH_SCOPE_INFRA, NULL, 0);
    AuthClaims c;
    Err err = {0};

    /* one file, two PEM blocks */
    char both[160];
    str_printf(both, sizeof(both), "%s/both.pem", fx->dir);
    write_pem(both, fx->key_a, false, "w");
    write_pem(both, fx->key_b, false, "a");
    Auth *a = load_auth(both);
    assert_true(auth_verify(a, ja, &c, &err));
    assert_true(auth_verify(a, jb, &c, &err));
    assert_int_equal(c.scope, AUTH_SCOPE_INFRA);
    auth_free(a);

    /* a directory: every file, hidden files ignored */
    char dir[160], path[200];
    str_printf(dir, sizeof(dir), "%s/keys", fx->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    str_printf(path, sizeof(path), "%s/1.pem", dir);
    write_pem(path, fx->key_a, false, "w");
    str_printf(path, sizeof(path), "%s/.hidden", dir);
    write_text(path, "not a key");
    a = load_auth(dir);
    assert_true(auth_verify(a, ja, &c, &err));
    expect_verify_fail(a, jb, ERR_FORBIDDEN, "signature");
    auth_free(a);
    str_printf(path, sizeof(path), "%s/2.pem", dir);
    write_pem(path, fx->key_b, false, "w");
    a = load_auth(dir);
    assert_true(auth_verify(a, ja, &c, &err));
    assert_true(auth_verify(a, jb, &c, &err));
    auth_free(a);

    free(ja);
    free(jb);
    auth_signer_free(sa);
    auth_signer_free(sb);
}

static void test_key_file_errors(void **state)
{
    Fixture *fx = *state;
    char path[160];
    Auth *a = NULL;
    Err err = {0};

    str_printf(path, sizeof(path), "%s/missing.pem", fx->dir);
    assert_false(auth_new_from_file(path, &a, &err));
    assert_non_null(strstr(err.msg, "missing.pem"));

    str_printf(path, sizeof(path), "%s/empty.pem", fx->dir);
    write_text(path, "");
    assert_false(auth_new_from_file(path, &a, &err));
    assert_non_null(strstr(err.msg, "no PEM public key"));

    /* a private key where a public key belongs is named as such */
    assert_false(auth_new_from_file(fx->priv_a, &a, &err));
    assert_non_null(strstr(err.msg, "PRIVATE KEY"));

    str_printf(path, sizeof(path), "%s/garbage.pem", fx->dir);
    write_text(path, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    assert_false(auth_new_from_file(path, &a, &err));
    assert_non_null(strstr(err.msg, "not a valid public key"));

    /* an RSA-free world: an EC key is refused as not Ed25519 */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    str_printf(path, sizeof(path), "%s/ec.pem", fx->dir);
    write_pem(path, ec, false, "w");
    assert_false(auth_new_from_file(path, &a, &err));
    assert_non_null(strstr(err.msg, "not an Ed25519"));
    AuthSigner *s = NULL;
    str_printf(path, sizeof(path), "%s/ec.key", fx->dir);
    write_pem(path, ec, true, "w");
    assert_false(auth_signer_new_from_file(path, &s, &err));
    assert_non_null(strstr(err.msg, "not an Ed25519"));
    EVP_PKEY_free(ec);

    /* a public key is not a signing key */
    assert_false(auth_signer_new_from_file(fx->pub_a, &s, &err));
    assert_null(s);

    /* an empty directory */
    str_printf(path, sizeof(path), "%s/emptydir", fx->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_false(auth_new_from_file(path, &a, &err));
    assert_null(a);
}

static void test_expired(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    AuthSigner *s = load_signer(fx->priv_a);
    char *jwt = sign(s, AUTH_SCOPE_ADMIN, NULL, (int64_t)time(NULL) - 10);
    expect_verify_fail(a, jwt, ERR_FORBIDDEN, "token expired");
    free(jwt);
    auth_signer_free(s);
    auth_free(a);
}

static void test_malformed_tokens(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    AuthSigner *s = load_signer(fx->priv_a);
    char *good = sign(s, AUTH_SCOPE_ADMIN, NULL, 0);
    const char *dot1 = strchr(good, '.');
    char with_pad[1024];
    str_printf(with_pad, sizeof(with_pad), "%s=", good);
    char four_parts[1024];
    str_printf(four_parts, sizeof(four_parts), "%s.AAAA", good);
    char bad_header[1024];
    str_printf(bad_header, sizeof(bad_header), "e30%s", dot1); /* "{}" has no alg */
    char not_json_header[1024];
    str_printf(not_json_header, sizeof(not_json_header), "YWJj%s", dot1); /* "abc" */

    static char big[10000];
    memset(big, 'A', sizeof(big) - 1);

    const struct {
        const char *jwt;
        const char *needle;
    } cases[] = {
        {"", "missing token"},
        {"abc", "header.payload.signature"},
        {"a.b", "header.payload.signature"},
        {".b.c", "header.payload.signature"},
        {"a..c", "header.payload.signature"},
        {"a.b.", "header.payload.signature"},
        {four_parts, "header.payload.signature"},
        {"!!!!.e30.AAAA", "header"},
        {with_pad, "signature is not base64url"},
        {bad_header, "algorithm"},
        {not_json_header, "header"},
        {big, "longer than"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_verify_fail(a, cases[i].jwt, ERR_UNAUTHORIZED, cases[i].needle);
    free(good);
    auth_signer_free(s);
    auth_free(a);
}

static void test_claims_rejected(void **state)
{
    Fixture *fx = *state;
    Auth *a = load_auth(fx->pub_a);
    const char *h = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";
    const struct {
        const char *payload;
        ErrCode code;
        const char *needle;
    } cases[] = {
        {"{\"scope\":\"superuser\"}", ERR_FORBIDDEN, "unknown"},
        {"{\"scope\":\"none\"}", ERR_FORBIDDEN, "unknown"},
        {"{\"scope\":\"Admin\"}", ERR_FORBIDDEN, "unknown"},
        {"{}", ERR_FORBIDDEN, "no 'scope'"},
        {"{\"scope\":7}", ERR_FORBIDDEN, "no 'scope'"},
        {"{\"scope\":\"tenant\",\"tenant_id\":\"xyz\"}", ERR_FORBIDDEN, "tenant_id"},
        {"{\"scope\":\"tenant\",\"tenant_id\":5}", ERR_FORBIDDEN, "tenant_id"},
        {"{\"scope\":\"admin\",\"exp\":\"soon\"}", ERR_FORBIDDEN, "exp"},
        {"{\"scope\":\"admin\",\"exp\":1}", ERR_FORBIDDEN, "expired"},
        {"{\"scope\":\"admin\",\"scope\":\"tenant\"}", ERR_UNAUTHORIZED, "payload"},
        {"[\"admin\"]", ERR_UNAUTHORIZED, "payload"},
        {"not json", ERR_UNAUTHORIZED, "payload"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *jwt = sign_raw(fx->key_a, h, cases[i].payload);
        expect_verify_fail(a, jwt, cases[i].code, cases[i].needle);
        free(jwt);
    }
    /* accepted variants: null tenant, uppercase tenant hex, extra claims, far exp as real */
    const char *ok_payloads[] = {
        "{\"scope\":\"tenant\",\"tenant_id\":null}",
        "{\"scope\":\"tenant\",\"tenant_id\":\"1F359DD625E519A1A4E8D7509690F6FC\"}",
        "{\"scope\":\"admin\",\"iat\":1,\"iss\":\"x\"}",
        "{\"scope\":\"admin\",\"exp\":4102444800.0}",
    };
    for (size_t i = 0; i < sizeof(ok_payloads) / sizeof(ok_payloads[0]); i++) {
        char *jwt = sign_raw(fx->key_a, h, ok_payloads[i]);
        AuthClaims c;
        Err err = {0};
        if (!auth_verify(a, jwt, &c, &err))
            fail_msg("payload %s rejected: %s", ok_payloads[i], err.msg);
        free(jwt);
    }
    auth_free(a);
}

static void test_scope_names(void **state)
{
    static const struct {
        AuthScope scope;
        const char *name;
    } table[] = {
        {AUTH_SCOPE_PAGESERVERAPI, "pageserverapi"},
        {AUTH_SCOPE_GENERATIONS_API, "generations_api"},
        {AUTH_SCOPE_ADMIN, "admin"},
        {AUTH_SCOPE_INFRA, "infra"},
        {AUTH_SCOPE_SCRUBBER, "scrubber"},
        {AUTH_SCOPE_TENANT, "tenant"},
        {AUTH_SCOPE_CONTROLLER_PEER, "controller_peer"},
    };
    assert_int_equal(sizeof(table) / sizeof(table[0]), AUTH_SCOPE_COUNT - 1);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        assert_string_equal(auth_scope_name(table[i].scope), table[i].name);
        AuthScope s = AUTH_SCOPE_NONE;
        assert_true(auth_scope_parse(table[i].name, &s));
        assert_int_equal(s, table[i].scope);
    }
    assert_string_equal(auth_scope_name(AUTH_SCOPE_NONE), "none");
    assert_string_equal(auth_scope_name(AUTH_SCOPE_COUNT), "unknown");
    const char *bad[] = {"none", "", "ADMIN", "admin ", "page_server_api", "safekeeperdata"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        AuthScope s = AUTH_SCOPE_ADMIN;
        assert_false(auth_scope_parse(bad[i], &s));
    }
}

static void test_check_rules(void **state)
{
    enum { NO_TENANT, TENANT_1, TENANT_2 };
    static const struct {
        AuthPolicy policy;
        AuthScope required;
        AuthScope claim;
        int claim_tenant;
        int route_tenant;
        bool ok;
    } cases[] = {
        /* storage controller: the route's scope, or admin */
        {AUTH_POLICY_STORCON, AUTH_SCOPE_ADMIN, AUTH_SCOPE_ADMIN, NO_TENANT, NO_TENANT, true},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_INFRA, AUTH_SCOPE_ADMIN, NO_TENANT, NO_TENANT, true},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_GENERATIONS_API, AUTH_SCOPE_ADMIN, NO_TENANT, TENANT_1,
         true},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_INFRA, AUTH_SCOPE_INFRA, NO_TENANT, NO_TENANT, true},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_ADMIN, AUTH_SCOPE_INFRA, NO_TENANT, NO_TENANT, false},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_ADMIN, AUTH_SCOPE_PAGESERVERAPI, NO_TENANT, NO_TENANT,
         false},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_GENERATIONS_API, AUTH_SCOPE_SCRUBBER, NO_TENANT, NO_TENANT,
         false},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_ADMIN, AUTH_SCOPE_TENANT, TENANT_1, TENANT_1, false},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_TENANT, AUTH_SCOPE_TENANT, TENANT_1, TENANT_1, true},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_TENANT, AUTH_SCOPE_TENANT, TENANT_1, TENANT_2, false},
        {AUTH_POLICY_STORCON, AUTH_SCOPE_NONE, AUTH_SCOPE_SCRUBBER, NO_TENANT, NO_TENANT, true},
        /* pageserver: pageserverapi everything, tenant only its own tenant */
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_PAGESERVERAPI, NO_TENANT,
         NO_TENANT, true},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_PAGESERVERAPI, NO_TENANT,
         TENANT_2, true},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_TENANT, TENANT_1, TENANT_1,
         true},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_TENANT, TENANT_1, TENANT_2,
         false},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_TENANT, TENANT_1, NO_TENANT,
         false},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_TENANT, NO_TENANT, TENANT_1,
         false},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_ADMIN, NO_TENANT, NO_TENANT,
         false},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI, AUTH_SCOPE_GENERATIONS_API, NO_TENANT,
         TENANT_1, false},
        {AUTH_POLICY_PAGESERVER, AUTH_SCOPE_NONE, AUTH_SCOPE_TENANT, TENANT_1, NO_TENANT, true},
    };
    TenantId t1, t2;
    Err err = {0};
    assert_true(tenant_id_parse(T1, &t1, &err));
    assert_true(tenant_id_parse(T2, &t2, &err));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        AuthClaims c = {.scope = cases[i].claim};
        if (cases[i].claim_tenant != NO_TENANT) {
            c.has_tenant = true;
            c.tenant_id = cases[i].claim_tenant == TENANT_1 ? t1 : t2;
        }
        const TenantId *route = cases[i].route_tenant == NO_TENANT  ? NULL
                                : cases[i].route_tenant == TENANT_1 ? &t1
                                                                    : &t2;
        err_clear(&err);
        bool ok = auth_check(cases[i].policy, cases[i].required, &c, route, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu: got %d want %d (%s)", i, ok, cases[i].ok, err.msg);
        if (!ok)
            assert_int_equal(err.code, ERR_FORBIDDEN);
    }
    /* the message names the scope */
    AuthClaims c = {.scope = AUTH_SCOPE_TENANT, .has_tenant = true, .tenant_id = t1};
    assert_false(auth_check(AUTH_POLICY_STORCON, AUTH_SCOPE_ADMIN, &c, NULL, &err));
    assert_string_equal(err.msg, "scope 'tenant' may not call this route");
    /* no claims at all is a missing token */
    assert_false(auth_check(AUTH_POLICY_STORCON, AUTH_SCOPE_ADMIN, NULL, NULL, &err));
    assert_int_equal(err.code, ERR_UNAUTHORIZED);
}

static void test_bearer_token(void **state)
{
    const struct {
        const char *header;
        const char *token; /* NULL = rejected */
    } cases[] = {
        {"Bearer abc.def.ghi", "abc.def.ghi"},
        {"bearer abc", "abc"},
        {"BEARER   abc", "abc"},
        {"  Bearer\tabc", "abc"},
        {"Bearer", NULL},
        {"Bearer ", NULL},
        {"Bearerabc", NULL},
        {"Basic dXNlcjpwYXNz", NULL},
        {"", NULL},
        {"abc.def.ghi", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *tok = NULL;
        Err err = {0};
        bool ok = auth_bearer_token(cases[i].header, &tok, &err);
        if (cases[i].token == NULL) {
            if (ok)
                fail_msg("header '%s' accepted", cases[i].header);
            assert_int_equal(err.code, ERR_UNAUTHORIZED);
        } else {
            if (!ok)
                fail_msg("header '%s' rejected: %s", cases[i].header, err.msg);
            assert_string_equal(tok, cases[i].token);
        }
    }
    const char *tok = NULL;
    Err err = {0};
    assert_false(auth_bearer_token(NULL, &tok, &err));
    assert_int_equal(err.code, ERR_UNAUTHORIZED);
    assert_string_equal(err.msg, "missing authorization header");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_alg_none_and_others_rejected),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_multiple_keys),
        cmocka_unit_test(test_key_file_errors),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_malformed_tokens),
        cmocka_unit_test(test_claims_rejected),
        cmocka_unit_test(test_scope_names),
        cmocka_unit_test(test_check_rules),
        cmocka_unit_test(test_bearer_token),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
