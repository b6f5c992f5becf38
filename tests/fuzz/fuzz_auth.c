/*
 * fuzz_auth: JWT bearer tokens (shared/auth.c): the Authorization header, then auth_verify
 * (base64url, header and claims JSON, EdDSA signature, exp) with a fixed test public key, then
 * auth_check under both daemons' policies. The seed tokens in corpus/auth/ are signed with the
 * private half of that key (tests/fuzz/gen_corpus.c), so the fuzzer starts past the signature.
 */
#include <limits.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"

#include "shared/auth.h"

/* A throwaway Ed25519 key used only by the fuzz corpus (never by a daemon). */
static const char FUZZ_PUBLIC_KEY[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAAn+/n98xXNSDFxrvVmBEepo37qHtEwXVQbZlm3mjMSE=\n"
    "-----END PUBLIC KEY-----\n";

static Auth *auth;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fuzz_auth.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, FUZZ_PUBLIC_KEY, strlen(FUZZ_PUBLIC_KEY)) < 0)
        abort();
    close(fd);
    Err err = {0};
    if (!auth_new_from_file(path, &auth, &err)) {
        fprintf(stderr, "fuzz_auth: %s\n", err.msg);
        abort();
    }
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    Err err = {0};
    const char *token = s;
    /* "Bearer <jwt>" inputs go through the header parser; anything else is taken as the token */
    if (strncmp(s, "Bearer", 6) == 0 && !auth_bearer_token(s, &token, &err)) {
        FUZZ_CHECK(err.code == ERR_UNAUTHORIZED);
        free(s);
        return 0;
    }
    AuthClaims claims;
    if (auth_verify(auth, token, &claims, &err)) {
        FUZZ_CHECK(claims.scope > AUTH_SCOPE_NONE && claims.scope < AUTH_SCOPE_COUNT);
        AuthScope again;
        FUZZ_CHECK(auth_scope_parse(auth_scope_name(claims.scope), &again) &&
                   again == claims.scope);
        TenantId route = {{0}};
        for (int p = 0; p < AUTH_POLICY_COUNT; p++) {
            for (int scope = AUTH_SCOPE_PAGESERVERAPI; scope < AUTH_SCOPE_COUNT; scope++) {
                Err cerr = {0};
                (void)!auth_check((AuthPolicy)p, (AuthScope)scope, &claims, &route, &cerr);
                (void)!auth_check((AuthPolicy)p, (AuthScope)scope, &claims, NULL, &cerr);
            }
        }
    } else {
        FUZZ_CHECK(err.code == ERR_UNAUTHORIZED || err.code == ERR_FORBIDDEN);
    }
    free(s);
    return 0;
}
