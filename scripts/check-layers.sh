#!/usr/bin/env bash
# Checks the include layering of the C sources (run by scripts/test.sh as the "layers" stage):
#
#   1. Directory rules (LAYERS below): a file under <dir>/ may only include project headers from
#      the directories listed for it. shared/ is the bottom layer; the daemons and the CLI sit on
#      it and never include each other.
#   2. HTTP layer rule: under pageserver/, only the HTTP layer (pageserver/http_*.[ch] and
#      pageserver/main.c) includes shared/http_server.h; the rest of the pageserver knows nothing
#      of HTTP.
#
# Only direct #include "dir/file.h" lines are checked (system headers are ignored). There are no
# exceptions. Prints every violation; exit status 1 if any.
# --self-test checks that each rule catches a planted violation in a throwaway tree.
set -uo pipefail

script=$(readlink -f "${BASH_SOURCE[0]}")

# --self-test: the rules must catch a violation of each kind in a throwaway tree.
if [ "${1:-}" = --self-test ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/scripts" "$tmp/shared" "$tmp/pageserver" "$tmp/storcon"
  cp "$script" "$tmp/scripts/"
  printf '#include "shared/str.h"\n' >"$tmp/shared/ok.c"
  printf '#include "shared/http_server.h"\n' >"$tmp/pageserver/http_ok.c"
  ok=1
  bash "$tmp/scripts/check-layers.sh" >/dev/null || ok=0
  for bad in 'shared/up.c:#include "storcon/service.h"' 'storcon/x.c:#include "pageserver/tenant.h"' \
    'pageserver/y.c:#include "storcon/node.h"' 'pageserver/core.h:#include "shared/http_server.h"'; do
    printf '%s\n' "${bad#*:}" >"$tmp/${bad%%:*}"
    if bash "$tmp/scripts/check-layers.sh" >/dev/null; then
      echo "check-layers self-test: not detected: ${bad%%:*}: ${bad#*:}"
      ok=0
    fi
    rm "$tmp/${bad%%:*}"
  done
  [ "$ok" = 1 ] && echo "check-layers self-test: passed"
  [ "$ok" = 1 ]
  exit
fi

cd "$(dirname "$script")/.." || exit 1

# <dir>:<directories its files may include from>. Edit here when the layering changes.
LAYERS=(
  "shared:shared"
  "pageserver:shared pageserver"
  "storcon:shared storcon"
  "storconctl:shared storconctl"
)

# Files under pageserver/ allowed to include shared/http_server.h.
HTTP_LAYER_GLOBS=("pageserver/http_*.c" "pageserver/http_*.h" "pageserver/main.c")

violations=0

# report FILE HEADER WHY: count a violation.
report() {
  echo "check-layers: VIOLATION: $1 includes $2 ($3)"
  violations=$((violations + 1))
}

# includes FILE: the project headers FILE includes directly, one per line.
includes() {
  sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([a-z_]+\/[^"]+)".*/\1/p' "$1"
}

checked=0
for rule in "${LAYERS[@]}"; do
  dir=${rule%%:*}
  allowed=" ${rule#*:} "
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' file; do
    checked=$((checked + 1))
    while IFS= read -r header; do
      top=${header%%/*}
      case " $(printf '%s ' "${LAYERS[@]%%:*}") " in
        *" $top "*) ;;
        *) continue ;; # not a layered directory (e.g. generated files)
      esac
      if [[ "$allowed" != *" $top "* ]]; then
        report "$file" "$header" "$dir/ may include only:${allowed% }"
      fi
      if [ "$dir" = pageserver ] && [ "$header" = shared/http_server.h ]; then
        in_http_layer=0
        for glob in "${HTTP_LAYER_GLOBS[@]}"; do
          # shellcheck disable=SC2053 # the glob is meant to match
          [[ "$file" == $glob ]] && in_http_layer=1
        done
        if [ "$in_http_layer" = 0 ]; then
          report "$file" "$header" "only the pageserver's HTTP layer (${HTTP_LAYER_GLOBS[*]}) may"
        fi
      fi
    done < <(includes "$file")
  done < <(find "$dir" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
done

echo "check-layers: $checked files, $violations violations"
[ "$violations" -eq 0 ]
