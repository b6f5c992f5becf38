/* node_metadata.c: <workdir>/metadata.json, written at startup, guarding the work directory. */
#include "pageserver/node_metadata.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/fsutil.h"
#include "shared/str.h"

#include "pageserver/defaults.h"

json_t *node_metadata_to_json(const NodeMetadata *md)
{
    return json_pack("{s:I, s:s, s:i, s:s, s:i, s:s}", "node_id", (json_int_t)md->node_id,
                     "listen_http_addr", md->listen_http_addr, "listen_http_port",
                     (int)md->listen_http_port, "listen_pg_addr", md->listen_pg_addr,
                     "listen_pg_port", (int)md->listen_pg_port, "availability_zone_id",
                     md->availability_zone_id);
}

/* get_string: a required string field copied into a bounded array. */
static bool get_string(const json_t *obj, const char *key, char *out, size_t cap, Err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\" must be a string", key);
        return false;
    }
    if (!str_copy(out, cap, json_string_value(v))) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\" is too long", key);
        return false;
    }
    return true;
}

/* get_int: a required integer field in [min, max]. */
static bool get_int(const json_t *obj, const char *key, json_int_t min, json_int_t max,
                    json_int_t *out, Err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\" must be an integer", key);
        return false;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\" out of range: %" JSON_INTEGER_FORMAT, key, n);
        return false;
    }
    *out = n;
    return true;
}

bool node_metadata_from_json(const json_t *obj, NodeMetadata *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj)) {
        err_set(err, ERR_BAD_REQUEST, "node metadata must be a JSON object");
        return false;
    }
    json_int_t id, http_port, pg_port;
    if (!get_int(obj, "node_id", 1, INT64_MAX, &id, err) ||
        !get_string(obj, "listen_http_addr", out->listen_http_addr, sizeof(out->listen_http_addr),
                    err) ||
        !get_int(obj, "listen_http_port", 0, UINT16_MAX, &http_port, err) ||
        !get_string(obj, "listen_pg_addr", out->listen_pg_addr, sizeof(out->listen_pg_addr), err) ||
        !get_int(obj, "listen_pg_port", 0, UINT16_MAX, &pg_port, err) ||
        !get_string(obj, "availability_zone_id", out->availability_zone_id,
                    sizeof(out->availability_zone_id), err))
        return false;
    out->node_id = (NodeId)id;
    out->listen_http_port = (uint16_t)http_port;
    out->listen_pg_port = (uint16_t)pg_port;
    return true;
}

bool node_metadata_load(const char *path, NodeMetadata *out, bool *found, Err *err)
{
    *found = false;
    char *text = NULL;
    size_t len = 0;
    Err read_err = {0};
    if (!fs_read_file(path, PAGESERVER_METADATA_MAX_BYTES, &text, &len, &read_err)) {
        if (read_err.code == ERR_NOT_FOUND)
            return true;
        if (err != NULL)
            *err = read_err;
        return false;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(text, len, 0, &jerr);
    free(text);
    if (obj == NULL) {
        err_set(err, ERR_BAD_REQUEST, "%s: invalid JSON: %s (line %d)", path, jerr.text, jerr.line);
        return false;
    }
    bool ok = node_metadata_from_json(obj, out, err);
    json_decref(obj);
    if (!ok) {
        err_prefix(err, "%s: ", path);
        return false;
    }
    *found = true;
    return true;
}

bool node_metadata_store(const char *path, const NodeMetadata *md, Err *err)
{
    json_t *obj = node_metadata_to_json(md);
    if (obj == NULL) {
        err_set(err, ERR_INTERNAL, "cannot build node metadata JSON");
        return false;
    }
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text == NULL) {
        err_set(err, ERR_INTERNAL, "cannot serialise node metadata");
        return false;
    }
    StrBuf buf = STRBUF_INIT;
    strbuf_append_str(&buf, text);
    strbuf_append_str(&buf, "\n");
    free(text);
    bool ok = fs_write_atomic(path, buf.data, buf.len, err);
    strbuf_finish(&buf);
    return ok;
}

bool node_metadata_check_identity(const char *path, NodeId node_id, Err *err)
{
    NodeMetadata md;
    bool found = false;
    if (!node_metadata_load(path, &md, &found, err))
        return false;
    if (found && md.node_id != node_id) {
        err_set(err, ERR_CONFLICT,
                "%s belongs to node %" PRIu64 ", refusing to start as node %" PRIu64
                " (use that node's --id, or another --workdir)",
                path, (uint64_t)md.node_id, (uint64_t)node_id);
        return false;
    }
    return true;
}
