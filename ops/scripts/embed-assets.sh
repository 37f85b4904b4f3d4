#!/usr/bin/env bash
# Regenerates Sources/StarlingServer/ClientAssets.swift from clients/js/starling.js (the
# JavaScript package's module: one file, served by the broker at /starling.js) and
# Sources/StarlingServer/Assets/demo.html, so the binary serves both from anywhere.
# BrowserModuleTests.testServedAssetsMatchTheSourceFiles fails when they differ.
set -euo pipefail
cd "$(dirname "$0")/../../Sources/StarlingServer"
python3 - <<'PY'
js = open('../../clients/js/starling.js').read()
html = open('Assets/demo.html').read()
assert '"""#' not in js and '"""#' not in html
open('ClientAssets.swift', 'w').write('''// ClientAssets: the browser module and the demo page, served at /starling.js and /demo.
// Generated from clients/js/starling.js and Assets/demo.html by ops/scripts/embed-assets.sh;
// a test checks they match.

enum ClientAssets {
    static let starlingJS = #"""
''' + js + '''
"""#

    static let demoHTML = #"""
''' + html + '''
"""#
}
''')
PY
