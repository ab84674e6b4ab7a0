#!/bin/sh
# Re-fetch the dashboard's chart library (Chart.js, MIT) from the npm registry at the pinned
# version and vendor its minified UMD build and license into api/static/vendor/. The page never
# loads anything from a CDN: the file is served by api/dashboard.py. `make vendor-charts` runs this
# and checks the files against SHA256SUMS; `CHARTJS_VERSION=x.y.z make vendor-charts` bumps the
# version and rewrites SHA256SUMS (then change PINNED below).
set -eu
PINNED=4.6.1
VERSION="${CHARTJS_VERSION:-$PINNED}"
HERE="$(cd "$(dirname "$0")" && pwd)"
DEST="$HERE/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# npm pack checks the tarball against the registry's sha512 integrity
(cd "$WORK" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
# without its sourceMappingURL line: the 1 MB map is not vendored, and browsers would ask for it
sed '/^\/\/# sourceMappingURL=/d' "$WORK/package/dist/chart.umd.min.js" > "$DEST/chart.umd.min.js"
cp "$WORK/package/LICENSE.md" "$DEST/chart.js.LICENSE.md"
echo "chart.js $VERSION" > "$DEST/VERSION"
if [ "$VERSION" = "$PINNED" ]; then
    (cd "$DEST" && sha256sum -c --quiet SHA256SUMS)
else
    (cd "$DEST" && sha256sum chart.umd.min.js chart.js.LICENSE.md > SHA256SUMS)
fi
echo "vendored chart.js $VERSION into $DEST"
