#!/usr/bin/env bash
# Runs one libFuzzer target of the Fuzz/ package on a copy of its seed corpus (docs/FUZZING.md).
#
#   scripts/fuzz.sh list                         the targets
#   scripts/fuzz.sh TARGET SECONDS [ARGS…]       build (incrementally) and fuzz TARGET for SECONDS
#                                                (0: no time limit, e.g. with -runs=10000000);
#                                                ARGS go to libFuzzer, e.g. -jobs=2 or a crash file
#
# The committed corpus in Fuzz/Corpus/TARGET is copied to a temporary directory first, so a run
# never grows it; crashes, leaks and timeouts are written to a temporary artifact directory that
# is printed at the end. FUZZ_WORK_DIR chooses where both go (default: a new mktemp -d).
# The fuzzer runs under `nice -n 10`; its exit status is the script's.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_dir="$PWD/Fuzz"
targets=(wire-text wire-binary json tape channel token)

usage() {
    echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer args...] | scripts/fuzz.sh list" >&2
    echo "targets: ${targets[*]}" >&2
}

if [ "$#" -eq 0 ]; then
    usage
    exit 2
fi
if [ "$1" = "list" ]; then
    printf '%s\n' "${targets[@]}"
    exit 0
fi
if [ "$#" -lt 2 ]; then
    usage
    exit 2
fi
target="$1"
seconds="$2"
shift 2
if [[ ! " ${targets[*]} " =~ " ${target} " ]]; then
    echo "scripts/fuzz.sh: unknown target '$target'; scripts/fuzz.sh list shows the targets" >&2
    exit 2
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "scripts/fuzz.sh: SECONDS must be a whole number (0 for no limit), not '$seconds'" >&2
    exit 2
fi

# libFuzzer comes with the toolchain's clang runtime; without it -sanitize=fuzzer cannot link.
swiftc_path="$(command -v swiftc || true)"
if [ -z "$swiftc_path" ]; then
    echo "scripts/fuzz.sh: swiftc is not on PATH" >&2
    exit 1
fi
runtime="$(dirname "$(readlink -f "$swiftc_path")")/../lib/swift/clang/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
if [ ! -f "$runtime" ]; then
    echo "scripts/fuzz.sh: this Swift toolchain has no libFuzzer runtime ($runtime is missing);" >&2
    echo "use a swift.org Linux toolchain, which ships it (swiftc -sanitize=fuzzer)" >&2
    exit 1
fi

# `--sanitize fuzzer` lets libFuzzer's `main` link (SwiftPM otherwise renames the executable's
# entry point) and instruments the C targets; the one combined -Xswiftc flag comes last on
# every swiftc line, so each Swift module gets coverage *and* ASan (of two separate
# -sanitize= flags swiftc keeps only the last).
build=(swift build --package-path "$fuzz_dir" -c release --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -g)
nice -n 10 "${build[@]}" --product "$target"
binary="$("${build[@]}" --show-bin-path)/$target"

work="${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/switchboard-fuzz-$target.XXXXXX")}"
mkdir -p "$work/corpus" "$work/artifacts"
cp -R "$fuzz_dir/Corpus/$target/." "$work/corpus/"
options=(-max_total_time="$seconds" -artifact_prefix="$work/artifacts/" -print_final_stats=1 -timeout=25)
dictionary="$fuzz_dir/Dictionaries/$target.dict"
case "$target" in
    tape) dictionary="$fuzz_dir/Dictionaries/json.dict" ;;
    wire-binary) dictionary="$fuzz_dir/Dictionaries/wire-text.dict" ;;
esac
if [ -f "$dictionary" ]; then options+=(-dict="$dictionary"); fi

# Swift's own crash backtracer would take over libFuzzer's signal handler (and can take
# minutes); libFuzzer and ASan print the stack instead.
export SWIFT_BACKTRACE=enable=no
echo "scripts/fuzz.sh: $target for ${seconds}s, corpus copy $work/corpus" >&2
status=0
nice -n 10 "$binary" "${options[@]}" "$@" "$work/corpus" || status=$?
if compgen -G "$work/artifacts/*" > /dev/null; then
    echo "scripts/fuzz.sh: $target wrote these artifacts (crash-*, leak-*, timeout-*, oom-*):" >&2
    ls -l "$work/artifacts" >&2
    echo "reproduce one with: $binary FILE" >&2
else
    echo "scripts/fuzz.sh: no crash, leak or timeout (artifact directory $work/artifacts is empty)" >&2
fi
exit "$status"
