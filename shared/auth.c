/*
 * auth.c: EdDSA (Ed25519) JWT verification and signing, and the scope rules of both daemons.
 *
 * A token is base64url(header) "." base64url(payload) "." base64url(signature), no padding. The
 * header must say {"alg":"EdDSA"} (any other algorithm, "none" included, is refused before any
 * signature check); the signature covers the first two parts as sent. Verification tries every
 * configured public key. Structural problems (wrong shape, bad base64, a header or payload that
 * is not a JSON object, another algorithm) are ERR_UNAUTHORIZED; a token that is well formed but
 * not acceptable (bad signature, expired, unknown scope, a claim of the wrong type) is
 * ERR_FORBIDDEN. Keys are held as EVP_PKEY (OpenSSL 3); verification creates its own digest
 * context per call, so auth_verify may run on several threads at once.
 */
#include "shared/auth.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "shared/str.h"

#define AUTH_MAX_TOKEN     8192
#define AUTH_MAX_KEY_FILE  (1024 * 1024)
#define AUTH_MAX_KEYS      64
#define AUTH_ED25519_SIG   64
#define AUTH_JWT_HEADER    "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}"
#define PEM_BEGIN          "-----BEGIN "
#define PEM_END            "-----END "
#define PEM_PUBLIC_KEY_TAG "PUBLIC KEY-----"

struct Auth {
    EVP_PKEY *keys[AUTH_MAX_KEYS];
    size_t n_keys;
};

struct AuthSigner {
    EVP_PKEY *key;
};

static const char *const SCOPE_NAMES[AUTH_SCOPE_COUNT] = {
    [AUTH_SCOPE_NONE] = "none",
    [AUTH_SCOPE_PAGESERVERAPI] = "pageserverapi",
    [AUTH_SCOPE_GENERATIONS_API] = "generations_api",
    [AUTH_SCOPE_ADMIN] = "admin",
    [AUTH_SCOPE_INFRA] = "infra",
    [AUTH_SCOPE_SCRUBBER] = "scrubber",
    [AUTH_SCOPE_TENANT] = "tenant",
    [AUTH_SCOPE_CONTROLLER_PEER] = "controller_peer",
};

const char *auth_scope_name(AuthScope scope)
{
    if ((int)scope < 0 || scope >= AUTH_SCOPE_COUNT)
        return "unknown";
    return SCOPE_NAMES[scope];
}

/* auth_scope_parse: only real scopes; "none" is the absence of a requirement, never a claim. */
bool auth_scope_parse(const char *s, AuthScope *out)
{
    if (s == NULL)
        return false;
    for (int i = AUTH_SCOPE_NONE + 1; i < AUTH_SCOPE_COUNT; i++) {
        if (strcmp(s, SCOPE_NAMES[i]) == 0) {
            *out = (AuthScope)i;
            return true;
        }
    }
    return false;
}

/* ---- base64url without padding ---- */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(StrBuf *out, const unsigned char *in, size_t len)
{
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        char c[4] = {B64URL[(v >> 18) & 63], B64URL[(v >> 12) & 63], B64URL[(v >> 6) & 63],
                     B64URL[v & 63]};
        strbuf_append(out, c, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        char c[2] = {B64URL[(v >> 18) & 63], B64URL[(v >> 12) & 63]};
        strbuf_append(out, c, 2);
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        char c[3] = {B64URL[(v >> 18) & 63], B64URL[(v >> 12) & 63], B64URL[(v >> 6) & 63]};
        strbuf_append(out, c, 3);
    }
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* b64url_decode: strict decoding of in[len] (no padding, no stray characters, unused trailing
 * bits zero, so every byte string has exactly one accepted encoding). out needs len*3/4+1 bytes. */
static bool b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len)
{
    if (len % 4 == 1)
        return false;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return false;
    *out_len = n;
    return true;
}

/* b64url_decode_json: decode one token part and parse it as a JSON object; NULL when either
 * step fails. The caller owns the result. */
static json_t *b64url_decode_json(const char *in, size_t len)
{
    unsigned char *buf = xmalloc(len * 3 / 4 + 1);
    size_t n = 0;
    json_t *j = NULL;
    if (b64url_decode(in, len, buf, &n)) {
        json_error_t jerr;
        j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
        if (j != NULL && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    free(buf);
    return j;
}

/* ---- loading keys ---- */

/* read_small_file: the whole file as a NUL-terminated heap string (caller frees). */
static bool read_small_file(const char *path, char **out, size_t *out_len, Err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        err_set(err, ERR_BAD_REQUEST, "cannot open key file %s: %s", path, strerror(errno));
        return false;
    }
    StrBuf b = STRBUF_INIT;
    char chunk[4096];
    size_t n;
    bool ok = true;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > AUTH_MAX_KEY_FILE) {
            err_set(err, ERR_BAD_REQUEST, "key file %s is larger than %d bytes", path,
                    AUTH_MAX_KEY_FILE);
            ok = false;
            break;
        }
        strbuf_append(&b, chunk, n);
    }
    if (ok && ferror(f)) {
        err_set(err, ERR_BAD_REQUEST, "cannot read key file %s: %s", path, strerror(errno));
        ok = false;
    }
    fclose(f);
    if (!ok) {
        strbuf_finish(&b);
        return false;
    }
    *out_len = b.len;
    *out = strbuf_detach(&b);
    return true;
}

/* auth_load_pem_file: add every "PUBLIC KEY" PEM block of the file. Other block types (a private
 * key or certificate configured by mistake) are an error that says what was found, and so is a
 * file without any block. */
static bool auth_load_pem_file(Auth *auth, const char *path, Err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (!read_small_file(path, &text, &len, err))
        return false;
    bool ok = true;
    int blocks = 0;
    const char *p = text;
    while ((p = strstr(p, PEM_BEGIN)) != NULL) {
        blocks++;
        const char *tag = p + strlen(PEM_BEGIN);
        if (strncmp(tag, PEM_PUBLIC_KEY_TAG, strlen(PEM_PUBLIC_KEY_TAG)) != 0) {
            const char *tag_end = strstr(tag, "-----");
            int tag_len = tag_end ? (int)(tag_end - tag) : 0;
            if (tag_len > 40)
                tag_len = 40;
            err_set(err, ERR_BAD_REQUEST,
                    "key file %s: PEM block %d is '%.*s', expected an Ed25519 PUBLIC KEY", path,
                    blocks, tag_len, tag);
            ok = false;
            break;
        }
        const char *end = strstr(tag, PEM_END);
        const char *line_end = end ? strchr(end, '\n') : NULL;
        if (end == NULL) {
            err_set(err, ERR_BAD_REQUEST, "key file %s: PEM block %d has no END line", path,
                    blocks);
            ok = false;
            break;
        }
        size_t block_len = line_end ? (size_t)(line_end + 1 - p) : strlen(p);
        BIO *bio = BIO_new_mem_buf(p, (int)block_len);
        EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (key == NULL) {
            err_set(err, ERR_BAD_REQUEST, "key file %s: PEM block %d is not a valid public key",
                    path, blocks);
            ok = false;
            break;
        }
        if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
            EVP_PKEY_free(key);
            err_set(err, ERR_BAD_REQUEST, "key file %s: PEM block %d is not an Ed25519 key", path,
                    blocks);
            ok = false;
            break;
        }
        if (auth->n_keys >= AUTH_MAX_KEYS) {
            EVP_PKEY_free(key);
            err_set(err, ERR_BAD_REQUEST, "more than %d auth public keys", AUTH_MAX_KEYS);
            ok = false;
            break;
        }
        auth->keys[auth->n_keys++] = key;
        p += block_len;
    }
    if (ok && blocks == 0) {
        err_set(err, ERR_BAD_REQUEST, "key file %s contains no PEM public key", path);
        ok = false;
    }
    ERR_clear_error(); /* failed PEM reads leave entries on OpenSSL's thread error queue */
    free(text);
    return ok;
}

static int skip_hidden(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* auth_new_from_file: a directory contributes every regular, non-hidden file in name order (so
 * key rotation is "drop a new file in"); each file may hold several PEM blocks. */
bool auth_new_from_file(const char *path, Auth **out, Err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        err_set(err, ERR_BAD_REQUEST, "cannot open auth key path %s: %s", path, strerror(errno));
        return false;
    }
    Auth *auth = xcalloc(1, sizeof(*auth));
    bool ok = true;
    if (S_ISDIR(st.st_mode)) {
        struct dirent **names = NULL;
        int n = scandir(path, &names, skip_hidden, alphasort);
        if (n < 0) {
            err_set(err, ERR_BAD_REQUEST, "cannot list auth key directory %s: %s", path,
                    strerror(errno));
            ok = false;
        }
        for (int i = 0; i < n; i++) {
            char *file = str_dup_printf("%s/%s", path, names[i]->d_name);
            struct stat fst;
            if (ok && stat(file, &fst) == 0 && S_ISREG(fst.st_mode))
                ok = auth_load_pem_file(auth, file, err);
            free(file);
            free(names[i]);
        }
        free(names);
        if (ok && auth->n_keys == 0) {
            err_set(err, ERR_BAD_REQUEST, "auth key directory %s contains no key files", path);
            ok = false;
        }
    } else {
        ok = auth_load_pem_file(auth, path, err);
    }
    if (!ok) {
        auth_free(auth);
        return false;
    }
    *out = auth;
    return true;
}

void auth_free(Auth *auth)
{
    if (auth == NULL)
        return;
    for (size_t i = 0; i < auth->n_keys; i++)
        EVP_PKEY_free(auth->keys[i]);
    free(auth);
}

/* ---- verification ---- */

static bool verify_with_key(EVP_PKEY *key, const unsigned char *sig, size_t sig_len,
                            const char *data, size_t data_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return false;
    bool ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data, data_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* auth_parse_claims: the payload object into AuthClaims; every failure here is a signed token
 * with claims we do not accept, hence ERR_FORBIDDEN. */
static bool auth_parse_claims(json_t *payload, AuthClaims *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    json_t *scope = json_object_get(payload, "scope");
    if (!json_is_string(scope)) {
        err_set(err, ERR_FORBIDDEN, "token has no 'scope' claim");
        return false;
    }
    if (!auth_scope_parse(json_string_value(scope), &out->scope)) {
        err_set(err, ERR_FORBIDDEN, "token scope '%.64s' is unknown", json_string_value(scope));
        return false;
    }
    json_t *tenant = json_object_get(payload, "tenant_id");
    if (tenant != NULL && !json_is_null(tenant)) {
        Err perr;
        if (!json_is_string(tenant) ||
            !tenant_id_parse(json_string_value(tenant), &out->tenant_id, &perr)) {
            err_set(err, ERR_FORBIDDEN, "token claim 'tenant_id' is not a valid tenant id");
            return false;
        }
        out->has_tenant = true;
    }
    json_t *exp = json_object_get(payload, "exp");
    if (exp != NULL && !json_is_null(exp)) {
        if (json_is_integer(exp)) {
            out->exp = (int64_t)json_integer_value(exp);
        } else if (json_is_real(exp) && json_real_value(exp) > 0 && json_real_value(exp) < 9.2e18) {
            out->exp = (int64_t)json_real_value(exp);
        } else {
            err_set(err, ERR_FORBIDDEN, "token claim 'exp' is not a number");
            return false;
        }
        int64_t now = (int64_t)time(NULL);
        if (out->exp <= now) {
            err_set(err, ERR_FORBIDDEN, "token expired");
            return false;
        }
    }
    return true;
}

bool auth_verify(const Auth *auth, const char *jwt, AuthClaims *out, Err *err)
{
    if (jwt == NULL || jwt[0] == '\0') {
        err_set(err, ERR_UNAUTHORIZED, "missing token");
        return false;
    }
    size_t len = strlen(jwt);
    if (len > AUTH_MAX_TOKEN) {
        err_set(err, ERR_UNAUTHORIZED, "malformed token: longer than %d bytes", AUTH_MAX_TOKEN);
        return false;
    }
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL || dot1 == jwt ||
        dot2 == dot1 + 1 || dot2[1] == '\0') {
        err_set(err, ERR_UNAUTHORIZED, "malformed token: expected header.payload.signature");
        return false;
    }

    json_t *header = b64url_decode_json(jwt, (size_t)(dot1 - jwt));
    if (header == NULL) {
        err_set(err, ERR_UNAUTHORIZED, "malformed token: header is not base64url JSON");
        return false;
    }
    json_t *alg = json_object_get(header, "alg");
    bool alg_ok = json_is_string(alg) && strcmp(json_string_value(alg), "EdDSA") == 0;
    if (!alg_ok) {
        err_set(err, ERR_UNAUTHORIZED, "token algorithm '%.32s' not accepted (want EdDSA)",
                json_is_string(alg) ? json_string_value(alg) : "");
        json_decref(header);
        return false;
    }
    json_decref(header);

    const char *sig_b64 = dot2 + 1;
    size_t sig_b64_len = len - (size_t)(sig_b64 - jwt);
    unsigned char sig[AUTH_MAX_TOKEN];
    size_t sig_len = 0;
    if (!b64url_decode(sig_b64, sig_b64_len, sig, &sig_len)) {
        err_set(err, ERR_UNAUTHORIZED, "malformed token: signature is not base64url");
        return false;
    }
    bool verified = false;
    if (sig_len == AUTH_ED25519_SIG) {
        for (size_t i = 0; i < auth->n_keys && !verified; i++)
            verified = verify_with_key(auth->keys[i], sig, sig_len, jwt, (size_t)(dot2 - jwt));
        ERR_clear_error();
    }
    if (!verified) {
        err_set(err, ERR_FORBIDDEN, "token signature invalid");
        return false;
    }

    json_t *payload = b64url_decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (payload == NULL) {
        err_set(err, ERR_UNAUTHORIZED, "malformed token: payload is not base64url JSON");
        return false;
    }
    bool ok = auth_parse_claims(payload, out, err);
    json_decref(payload);
    return ok;
}

/* auth_check: the storage controller accepts the route's own scope, or admin for everything; a
 * tenant-scoped token there must also name the route's tenant. The pageserver follows Neon: any
 * route that needs a token accepts pageserverapi, and a tenant token only on a route that names
 * its tenant; every other scope is refused. */
bool auth_check(AuthPolicy policy, AuthScope required, const AuthClaims *claims,
                const TenantId *route_tenant, Err *err)
{
    if (required == AUTH_SCOPE_NONE)
        return true;
    if (claims == NULL) {
        err_set(err, ERR_UNAUTHORIZED, "missing token");
        return false;
    }
    bool tenant_scope = claims->scope == AUTH_SCOPE_TENANT;
    bool scope_ok;
    if (policy == AUTH_POLICY_STORCON)
        scope_ok = claims->scope == AUTH_SCOPE_ADMIN || claims->scope == required;
    else
        scope_ok = claims->scope == AUTH_SCOPE_PAGESERVERAPI || tenant_scope;
    if (!scope_ok) {
        err_set(err, ERR_FORBIDDEN, "scope '%s' may not call this route",
                auth_scope_name(claims->scope));
        return false;
    }
    if (tenant_scope) {
        if (route_tenant == NULL) {
            err_set(err, ERR_FORBIDDEN, "scope 'tenant' may not call this route");
            return false;
        }
        if (!claims->has_tenant || !tenant_id_eq(&claims->tenant_id, route_tenant)) {
            char want[ID_STR_SIZE];
            tenant_id_format(route_tenant, want);
            err_set(err, ERR_FORBIDDEN, "token is not valid for tenant %s", want);
            return false;
        }
    }
    return true;
}

bool auth_bearer_token(const char *header, const char **token, Err *err)
{
    if (header == NULL) {
        err_set(err, ERR_UNAUTHORIZED, "missing authorization header");
        return false;
    }
    const char *p = header;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) {
        err_set(err, ERR_UNAUTHORIZED, "authorization header must be 'Bearer <token>'");
        return false;
    }
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0) {
        err_set(err, ERR_UNAUTHORIZED, "authorization header has an empty bearer token");
        return false;
    }
    if (p[n] != '\0') {
        /* trailing whitespace: the token itself never contains any */
        err_set(err, ERR_UNAUTHORIZED, "malformed bearer token (trailing whitespace)");
        return false;
    }
    *token = p;
    return true;
}

/* ---- signing ---- */

bool auth_signer_new_from_file(const char *path, AuthSigner **out, Err *err)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        err_set(err, ERR_BAD_REQUEST, "cannot open private key file %s: %s", path, strerror(errno));
        return false;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (key == NULL) {
        err_set(err, ERR_BAD_REQUEST, "private key file %s holds no PEM private key", path);
        return false;
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        err_set(err, ERR_BAD_REQUEST, "private key file %s is not an Ed25519 key", path);
        return false;
    }
    AuthSigner *s = xcalloc(1, sizeof(*s));
    s->key = key;
    *out = s;
    return true;
}

void auth_signer_free(AuthSigner *signer)
{
    if (signer == NULL)
        return;
    EVP_PKEY_free(signer->key);
    free(signer);
}

bool auth_sign(const AuthSigner *signer, AuthScope scope, const TenantId *tenant, int64_t exp,
               char **out_jwt, Err *err)
{
    if (scope <= AUTH_SCOPE_NONE || scope >= AUTH_SCOPE_COUNT) {
        err_set(err, ERR_BAD_REQUEST, "cannot sign a token with scope '%s'",
                auth_scope_name(scope));
        return false;
    }
    json_t *claims = json_object();
    json_object_set_new(claims, "scope", json_string(SCOPE_NAMES[scope]));
    if (tenant != NULL) {
        char hex[ID_STR_SIZE];
        tenant_id_format(tenant, hex);
        json_object_set_new(claims, "tenant_id", json_string(hex));
    }
    if (exp != 0)
        json_object_set_new(claims, "exp", json_integer((json_int_t)exp));
    char *payload = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(claims);
    if (payload == NULL) {
        err_set(err, ERR_INTERNAL, "cannot encode token claims");
        return false;
    }

    StrBuf b = STRBUF_INIT;
    b64url_encode(&b, (const unsigned char *)AUTH_JWT_HEADER, strlen(AUTH_JWT_HEADER));
    strbuf_append(&b, ".", 1);
    b64url_encode(&b, (const unsigned char *)payload, strlen(payload));
    free(payload);

    unsigned char sig[AUTH_ED25519_SIG];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, signer->key) == 1 &&
              EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)b.data, b.len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        strbuf_finish(&b);
        err_set(err, ERR_INTERNAL, "signing the token failed");
        return false;
    }
    strbuf_append(&b, ".", 1);
    b64url_encode(&b, sig, sig_len);
    *out_jwt = strbuf_detach(&b);
    return true;
}
