# Sourced by the CLI test scripts. The caller sets BIN (the cohortnet binary) and status=0.
# expect_error SUBCOMMAND WORD ARGS...: `cohortnet SUBCOMMAND ARGS...` must fail, and its message
# must contain WORD (the option, file or dataset it has to name); a failure sets status=1.
expect_error() {
  local cmd="$1" word="$2"; shift 2
  local out code
  out=$("$BIN" "$cmd" "$@" 2>&1); code=$?
  if [ $code -eq 0 ]; then echo "FAIL: '$cmd $*' succeeded"; status=1; return; fi
  if ! grep -q -e "$word" <<<"$out"; then echo "FAIL: '$cmd $*' error does not name $word:"; echo "$out"; status=1; return; fi
  echo "ok: $cmd $* -> $(grep -e "$word" <<<"$out" | head -1)"
}
