# scripts/lib.sh: shared settings for the build scripts (sourced, not run).
# One place defines where things live and how the kernel is invoked, so that
# configuring and building always use the same compiler (a changed CC makes
# Kconfig start over).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${GHOST_BUILD_DIR:-$ROOT/build}
# GHOST_KERNEL_VARIANT=NAME (e.g. kasan): a second, separate kernel tree,
# build/linux-NAME, configured with configs/*.config plus configs/NAME/*.config;
# its build log and VM output get the same -NAME suffix. Unset: build/linux.
VARIANT=${GHOST_KERNEL_VARIANT:-}
SUFFIX=${VARIANT:+-$VARIANT}
VARIANT_CONFIGS=()
if [ -n "$VARIANT" ]; then
	case "$VARIANT" in */* | .* | *[[:space:]]*) echo "bad GHOST_KERNEL_VARIANT '$VARIANT'" >&2; exit 1 ;; esac
	VARIANT_CONFIGS=("$ROOT/configs/$VARIANT"/*.config)
	[ -f "${VARIANT_CONFIGS[0]}" ] || { echo "GHOST_KERNEL_VARIANT=$VARIANT: no configs/$VARIANT/*.config" >&2; exit 1; }
fi
KSRC=$BUILD/linux$SUFFIX
KSTATE=$KSRC/.ghost-rs
JOBS=${JOBS:-3}
export PATH="$HOME/.cargo/bin:$PATH"

# LLVM=1 for configuration and build alike. ccache sits in front of clang
# through Debian's masquerade directory (not CC="ccache clang", which would
# also become rustc's host linker command and break it).
KMAKE_ARGS=(LLVM=1 -C "$KSRC")
if [ -x /usr/lib/ccache/clang ]; then
	export PATH="/usr/lib/ccache:$PATH"
	# The user's ccache directory, shared by every clone on the machine;
	# BASEDIR makes hits independent of where the clone lives.
	export CCACHE_BASEDIR=$KSRC
fi

# bindgen (the kernel's Rust bindings) loads libclang at run time and, left to
# itself, takes the newest one installed. It must be the libclang of the clang
# that builds the kernel (Debian 12's clang, llvm-14): with clang-19 installed
# (for tools/sched_ext) it would take libclang-19 and fail on clang-14's flags
# ("unknown argument: -enable-trivial-auto-var-init-zero-..."). The default
# llvm's llvm-config names it; LIBCLANG_PATH set by the caller wins.
if [ -z "${LIBCLANG_PATH:-}" ]; then
	LIBCLANG_PATH=$(llvm-config --libdir 2>/dev/null) || LIBCLANG_PATH=/usr/lib/llvm-14/lib
fi
export LIBCLANG_PATH

kmake() { make "${KMAKE_ARGS[@]}" "$@"; }

say() { echo "${0##*/}: $*"; }
die() { echo "${0##*/}: error: $*" >&2; exit 1; }

# Print a duration in seconds as "Xm YYs".
fmt_secs() { printf '%dm %02ds' $(($1 / 60)) $(($1 % 60)); }
