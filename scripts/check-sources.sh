#!/usr/bin/env bash
# The source checks of the test command (scripts/test.sh), quick and without a build:
#   - clang-format (the repo's .clang-format) over the C and C++ of src/ and tests/: any file
#     that `clang-format -i` would change fails, with the diff;
#   - shellcheck over every shell script of the repo: *.sh, *.bash, and any file whose first line
#     runs sh or bash (debian's maintainer scripts, .ci/run, bench/run).
# The files are git's (tracked, and new ones not ignored). Exit status 1 on any finding.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
say() { printf 'check-sources: %s\n' "$*" >&2; }

for tool in clang-format shellcheck git; do
  command -v "$tool" >/dev/null || {
    say "$tool is missing: run scripts/install-deps.sh"
    exit 1
  }
done

files=()
while IFS= read -r -d '' f; do
  [[ -f $f ]] && files+=("$f")
done < <(git ls-files -z --cached --others --exclude-standard)

status=0

cxx=()
for f in "${files[@]}"; do
  case $f in
    src/*.cc | src/*.h | tests/*.cc | tests/*.h | tests/*.c) cxx+=("$f") ;;
  esac
done
# One run over every file; its findings name the files ("path:line:col: error: ...").
unformatted=()
if ! findings=$(clang-format --dry-run --Werror "${cxx[@]}" 2>&1); then
  mapfile -t unformatted < <(sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' <<<"$findings" | sort -u)
  ((${#unformatted[@]})) || {
    say "clang-format failed: $findings"
    exit 1
  }
fi
if ((${#unformatted[@]})); then
  say "not formatted (clang-format -i ${unformatted[*]}):"
  for f in "${unformatted[@]}"; do
    clang-format "$f" | diff -u --label "$f" --label "$f (clang-format)" "$f" - || true
  done
  status=1
else
  say "clang-format: ${#cxx[@]} files formatted"
fi

scripts=()
for f in "${files[@]}"; do
  case $f in
    *.sh | *.bash) scripts+=("$f") ;;
    *)
      first=$(head -n 1 -- "$f" 2>/dev/null | tr -d '\0' || true)
      [[ $first =~ ^#!.*[/\ ](ba|da)?sh([[:space:]]|$) ]] && scripts+=("$f")
      ;;
  esac
done
if shellcheck -x "${scripts[@]}"; then
  say "shellcheck: ${#scripts[@]} scripts clean"
else
  status=1
fi
exit "$status"
