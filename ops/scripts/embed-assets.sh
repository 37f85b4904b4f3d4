#!/usr/bin/env bash
# Regenerates Sources/StarlingServer/ClientAssets.swift from Sources/StarlingServer/Assets/,
# so the binary serves /starling.js and /demo from anywhere. A test checks they match.
set -euo pipefail
cd "$(dirname "$0")/../../Sources/StarlingServer"
python3 - <<'PY'
js = open('Assets/starling.js').read()
html = open('Assets/demo.html').read()
assert '"""#' not in js and '"""#' not in html
open('ClientAssets.swift', 'w').write('''// ClientAssets: the browser module and the demo page, served at /starling.js and /demo.
// Generated from Assets/ by ops/scripts/embed-assets.sh; a test checks they match.

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
