#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short while (FUZZTIME, default 10s each): a smoke test
# that the parsers survive fresh random input, not a fuzzing campaign. Targets are found with
# `go test -list`, in the packages whose _test.go files declare a `func Fuzz...`.
# A crash leaves its input under <pkg>/testdata/fuzz/<Target>/ : commit it as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
failed=()
ran=0

# Packages with at least one `func FuzzXxx(` in a test file (grep first: -list compiles each package).
mapfile -t pkgs < <(go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
  while read -r imp dir files; do
    [ -n "$files" ] || continue
    for f in $files; do
      if grep -qE '^func Fuzz[A-Za-z0-9_]*\(' "$dir/$f"; then echo "$imp"; break; fi
    done
  done)

for pkg in "${pkgs[@]}"; do
  mapfile -t targets < <(go test -list '^Fuzz' "$pkg" | grep -E '^Fuzz' || true)
  for t in "${targets[@]}"; do
    ran=$((ran + 1))
    echo "fuzz: $pkg $t for $fuzztime"
    # A short -fuzzminimizetime: minimizing a large "interesting" input (a 6 KB SDP offer, each try a
    # whole WebRTC negotiation) otherwise takes the whole budget at 0 execs/s.
    dir=$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$t
    before=$(ls "$dir" 2>/dev/null | sort || true)
    log=$(mktemp)
    if go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1 | tee "$log"; then
      :
    elif [ "$(ls "$dir" 2>/dev/null | sort || true)" = "$before" ] &&
      grep -q 'context deadline exceeded' "$log"; then
      # Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a failure when a worker
      # is mid-call at that instant (go.dev/issue/75804, fixed in Go 1.27). A real failure always
      # writes its input under testdata/fuzz/; this wrote none.
      echo "fuzz: $pkg $t: ignored the fuzztime deadline race of Go's fuzz coordinator (no failing input written)"
    else
      failed+=("$pkg $t")
    fi
    rm -f "$log"
  done
done

if [ "$ran" -eq 0 ]; then
  echo "fuzz: no Fuzz targets found"
elif [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $ran targets FAILED:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
else
  echo "fuzz: all $ran targets ran $fuzztime without a failure"
fi
