#!/bin/sh
# Copies the browser libraries the pages use from node_modules/ into vendor/, with their
# licences. Run after changing a version in package.json (`npm install && sh vendor.sh`);
# vendor/ is committed, so building apimond needs no npm.
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
rm -rf vendor
mkdir -p vendor/sortablejs vendor/uplot
cp node_modules/sortablejs/modular/sortable.esm.js vendor/sortablejs/sortable.esm.js
cp node_modules/sortablejs/LICENSE vendor/sortablejs/LICENSE
cp node_modules/uplot/dist/uPlot.esm.js vendor/uplot/uPlot.esm.js
cp node_modules/uplot/dist/uPlot.min.css vendor/uplot/uPlot.min.css
cp node_modules/uplot/LICENSE vendor/uplot/LICENSE
for lib in sortablejs uplot; do
    version=$(node -p "require('./node_modules/$lib/package.json').version")
    echo "$lib $version" > "vendor/$lib/VERSION"
done
echo "vendor.sh: copied $(ls vendor | tr '\n' ' ')into vendor/"
