#!/bin/bash
# SPDX-License-Identifier: MIT
# stream_same.sh - sourced by test_ner_stream.sh and test_sentiment_stream.sh: the TAP verdict of
# one configuration, the streaming path's stream.out against the tape path's tape.out.
# same_outputs N CFG LINES MIN WHAT: LINES lines found (at least MIN wanted); WHAT says what the
# equality means. Adds 1 to the caller's $failed on a miss.
same_outputs() {
    if [ "$3" -lt "$4" ]; then
        failed=$((failed + 1)); echo "not ok $1 - $2: $3 lines (want $4)"
        head -3 stream.out | sed 's/^/# /'; [ -f stream.err ] && tail -2 stream.err | sed 's/^/# /'
    elif ! cmp -s stream.out tape.out; then
        failed=$((failed + 1)); echo "not ok $1 - $2: streaming and tape outputs differ"
        diff stream.out tape.out | head -4 | sed 's/^/# /'
    else
        echo "ok $1 - $2: $3 lines, $5"
    fi
    return 0
}
