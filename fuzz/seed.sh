#!/bin/sh
# Seeds the fuzz corpora from the writer's golden fixtures.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/writer_apply corpus/writer_marker
for d in ../tests/fixtures/*/; do
    cp "$d/original" "corpus/writer_apply/$(basename "$d")"
done
grep -ho '#.*\$imagepolicy.*' ../tests/fixtures/*/original | sort -u | split -l 1 - corpus/writer_marker/m_
