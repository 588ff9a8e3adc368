#!/usr/bin/env bash
# The allocation budgets (docs/BENCHMARKS.md, "Allocation budgets"): runs the AllocationBudgets
# benchmarks (release build, made here when missing) and compares each one's mallocs per
# operation with its budget in Thresholds/<Swift major.minor>/.
#
#   Benchmarks/check-allocations.sh            check; exit 0 only when every count equals its budget
#   Benchmarks/check-allocations.sh --update   write the counts measured now as the budgets
#
# A count above its budget is a regression (exit 2); a count below it fails too (exit 4), so
# that the budget is lowered (--update) and the saving cannot be lost again unnoticed.
# Exit 1: the build or a benchmark failed.
set -euo pipefail
cd "$(dirname "$0")"

mode=check
case "${1:-}" in
    "") ;;
    --update) mode=update ;;
    *) echo "usage: $0 [--update]" >&2; exit 64 ;;
esac

# Lua's headers, as the main package's other scripts install them.
pkg-config --exists lua5.4 2>/dev/null || ../scripts/setup.sh

# Allocation counts depend on the toolchain (and its standard library), so budgets are kept per
# Swift version, as swift-nio keeps its own.
swift_version=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
[ -n "$swift_version" ] || { echo "check-allocations: cannot read the Swift version from 'swift --version'" >&2; exit 1; }
thresholds="Thresholds/$swift_version"

# Only the malloc count is measured and checked: time depends on the machine and its load.
args=(--target AllocationBudgets --metric mallocCountTotal --path "$thresholds" --no-progress)

if [ "$mode" = update ]; then
    mkdir -p "$thresholds"
    swift package --allow-writing-to-package-directory benchmark thresholds update "${args[@]}"
    echo "check-allocations: budgets written to Benchmarks/$thresholds; review them with git diff"
    exit 0
fi

[ -d "$thresholds" ] || {
    echo "check-allocations: no budgets for Swift $swift_version (Benchmarks/$thresholds); measure them with $0 --update" >&2
    exit 1
}
# SwiftPM turns the plugin's verdict into exit status 1 and an "error: …" line; the line says which.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift package benchmark thresholds check "${args[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ]; then
    echo "check-allocations: every allocation count equals its budget (Swift $swift_version)"
    exit 0
elif grep -q 'error: benchmarkThresholdRegression' "$log"; then
    echo "check-allocations: FAILED: more allocations than budgeted (above); see where they come from with" \
        "'cd Benchmarks && swift package benchmark --target AllocationBudgets --filter NAME --allocation-stacks'" >&2
    exit 2
elif grep -q 'error: benchmarkThresholdImprovement' "$log"; then
    echo "check-allocations: FAILED: fewer allocations than budgeted (above): if that is intended," \
        "lower the budgets with Benchmarks/check-allocations.sh --update and commit Benchmarks/$thresholds" >&2
    exit 4
fi
echo "check-allocations: FAILED: the benchmarks did not build or run (exit $status)" >&2
exit 1
