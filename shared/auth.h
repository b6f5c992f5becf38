/*
 * auth.h: EdDSA (Ed25519) JWT bearer tokens (wire.md "Auth").
 *
 * Verification with one or more public keys (PEM), claims {"scope", "tenant_id"?, "exp"?}, the
 * scope rules of each daemon, and token signing (for storcon's own calls, the CLI and tests).
 */
#ifndef SHARED_AUTH_H
#define SHARED_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"

typedef enum AuthScope {
    AUTH_SCOPE_NONE = 0, /* route needs no token (health, metrics) */
    AUTH_SCOPE_PAGESERVERAPI,
    AUTH_SCOPE_GENERATIONS_API,
    AUTH_SCOPE_ADMIN,
    AUTH_SCOPE_INFRA,
    AUTH_SCOPE_SCRUBBER,
    AUTH_SCOPE_TENANT,
    AUTH_SCOPE_CONTROLLER_PEER,
    AUTH_SCOPE_COUNT
} AuthScope;

/* Which daemon's rules apply to a scope check. */
typedef enum AuthPolicy {
    AUTH_POLICY_STORCON,    /* the route's scope, or admin which passes everything; a tenant
                               token must also name the route's tenant */
    AUTH_POLICY_PAGESERVER, /* any route needing a token (its scope is pageserverapi) accepts
                               pageserverapi, and a tenant token only when the route names that
                               tenant; every other scope, admin included, is refused */
    AUTH_POLICY_COUNT
} AuthPolicy;

typedef struct AuthClaims {
    AuthScope scope;
    bool has_tenant;
    TenantId tenant_id;
    int64_t exp; /* unix seconds; 0 = no expiry */
} AuthClaims;

/* Public keys for verification. */
typedef struct Auth Auth;

/* auth_new_from_file: load every PEM public key in a file (or in every file of a directory).
 * The caller frees with auth_free. */
bool auth_new_from_file(const char *path, Auth **out, Err *err) MUST_CHECK;
void auth_free(Auth *auth);

/* auth_verify: verify "<header>.<payload>.<signature>" (alg EdDSA), decode the claims, check exp.
 * Malformed token or another alg ("none" included) -> ERR_UNAUTHORIZED; bad signature, unknown
 * scope, bad claims or expired -> ERR_FORBIDDEN. */
bool auth_verify(const Auth *auth, const char *jwt, AuthClaims *out, Err *err) MUST_CHECK;

/* auth_check: may these claims call a route that requires `required`? route_tenant is the
 * tenant named by the route's path (NULL when none). Wrong scope or tenant -> ERR_FORBIDDEN. */
bool auth_check(AuthPolicy policy, AuthScope required, const AuthClaims *claims,
                const TenantId *route_tenant, Err *err) MUST_CHECK;

/* auth_bearer_token: extract the token from an "Authorization: Bearer <jwt>" header value;
 * NULL header -> ERR_UNAUTHORIZED "missing token"; other schemes -> ERR_UNAUTHORIZED. The
 * returned pointer points into header. */
bool auth_bearer_token(const char *header, const char **token, Err *err) MUST_CHECK;

const char *auth_scope_name(AuthScope scope); /* "pageserverapi", ... ; "none" */
/* auth_scope_parse: real scopes only ("none" is not one). */
bool auth_scope_parse(const char *s, AuthScope *out);

/* Signing with an Ed25519 private key (PEM). */
typedef struct AuthSigner AuthSigner;
bool auth_signer_new_from_file(const char *path, AuthSigner **out, Err *err) MUST_CHECK;
void auth_signer_free(AuthSigner *signer);

/* auth_sign: a JWT with the given scope, tenant (NULL = none) and exp (0 = none). The caller
 * frees *out_jwt with free(). */
bool auth_sign(const AuthSigner *signer, AuthScope scope, const TenantId *tenant, int64_t exp,
               char **out_jwt, Err *err) MUST_CHECK;

#endif
