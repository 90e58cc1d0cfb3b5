#!/usr/bin/env bash
# The README's "Five minutes with it", run as written on the simulator
# cluster: every ```sh block of that section but the last (which needs the
# reader's provider keys), and the ```js block with the pinned openai npm
# client. Two substitutions, said here: `make up` / `make down` become the
# script they run (deploy/local/cluster.sh up|down), since the test suite
# has built already; `build/` becomes the build folder under test.
# Prints "PASS: " or "FAIL: ..." (ctest reads them).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:?BUILD_DIR is required}"
work="$(mktemp -d)"
export MOA_RUN_DIR="$work/run"
cleanup() { BUILD_DIR="$build" "$root/deploy/local/cluster.sh" down >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

# The section's fenced blocks, each into its own file: sh-1, sh-2, ..., js-1.
awk -v dir="$work" '
  /^## Five minutes with it/ { in_section = 1; next }
  /^## / && in_section { in_section = 0 }
  in_section && /^```(sh|js)$/ { lang = substr($0, 4); n[lang]++; file = dir "/" lang "-" n[lang]; next }
  in_section && /^```$/ && file { file = ""; next }
  file { print > file }
' "$root/README.md"
shopt -s nullglob
sh_blocks=("$work"/sh-*)
if ((${#sh_blocks[@]} < 4)) || [[ ! -f $work/js-1 ]]; then
  echo "FAIL: the README's five-minute path has ${#sh_blocks[@]} sh blocks and $(ls "$work"/js-* 2>/dev/null | wc -l) js blocks"
  exit 1
fi
last=$(ls "$work"/sh-* | sort -t- -k2 -n | tail -1)
cd "$root"
for block in $(ls "$work"/sh-* | sort -t- -k2 -n); do
  [[ $block == "$last" ]] && continue  # needs the reader's provider keys
  sed -i -e "s#^make up\$#BUILD_DIR=$build deploy/local/cluster.sh up#" \
    -e "s#^make down\$#BUILD_DIR=$build deploy/local/cluster.sh down#" \
    -e "s#\\bbuild/#$build/#g" "$block"
  echo "--- $(basename "$block")"; cat "$block"
  if ! out=$(bash -euo pipefail "$block" 2>&1); then
    echo "$out"
    echo "FAIL: $(basename "$block") of the README's five-minute path failed"
    exit 1
  fi
  echo "$out" | tail -20
done
# The SDK snippet, beside the pinned npm clients so its import resolves.
snippet="$root/tests/http/.five-minutes-$$.mjs"
{ cat "$work/js-1"; echo "console.log(answer.choices[0].message.content);"; } > "$snippet"
if ! out=$(node "$snippet" 2>&1); then
  rm -f "$snippet"
  echo "$out"
  echo "FAIL: the README's OpenAI SDK snippet failed"
  exit 1
fi
rm -f "$snippet"
echo "$out"
if [[ $out != *"synthesis of 4 responses"* ]]; then
  echo "FAIL: the SDK snippet's answer is not the panel's"
  exit 1
fi
echo "PASS: the README's five-minute path ran as written"
