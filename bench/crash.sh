#!/usr/bin/env bash
# Crash-cycle benchmark: 20 concurrent senders, the server SIGKILLed at random points 10
# times while they send at least 10,000 messages; then every message that got a 250 must be
# in a ticket exactly once. Prints the test's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
cd tests/e2e
POSTDESK_BIN=../../target/release/postdesk DURABILITY_CYCLES=${CYCLES:-10} \
  DURABILITY_MESSAGES=${MESSAGES:-10000} python3 -m unittest -v test_durability 2>&1 | grep -E "durability:|OK|FAIL|Error"
