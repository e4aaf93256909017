# Sourced by gpu.sh and gpu_notebooks.sh: named steps under one time budget, each with its own
# limit and log; a step that fails or runs out of time is reported and the next one still runs.
#
#   steps_init DIR TOTAL_S     DIR/steps.tsv and DIR/logs/; the deadline is now + TOTAL_S, unless a
#                              calling script already set one (STEPS_DEADLINE is exported)
#   step NAME BUDGET_S 'CMD'   runs CMD with bash -c, its output in DIR/logs/NAME.log, for at most
#                              min(BUDGET_S, the time left before the deadline less STEPS_RESERVE);
#                              appends one row to DIR/steps.tsv; always returns 0
#   steps_failed               exit status 1 if a step in DIR/steps.tsv did not end "ok"
#
# DRY_RUN=1: each step prints its name, budget and command and records "dry run".
STEPS_RESERVE=${STEPS_RESERVE:-15}  # seconds kept for the summary after the last step

steps_init() {
    export STEPS_DIR=$1
    mkdir -p "$STEPS_DIR/logs"
    if [ -z "${STEPS_DEADLINE:-}" ]; then
        STEPS_DEADLINE=$(( $(date +%s) + $2 ))
        export STEPS_DEADLINE
        printf 'step\tstatus\tseconds\tlimit_s\tlog\n' > "$STEPS_DIR/steps.tsv"
    fi
}

step() {
    local name=$1 budget=$2 cmd=$3
    local start rc=0 status limit left
    start=$(date +%s)
    left=$(( STEPS_DEADLINE - start - STEPS_RESERVE ))
    limit=$(( budget < left ? budget : left ))
    if [ -n "${DRY_RUN:-}" ]; then
        printf '[dry run] %-22s %4ss  %s\n' "$name" "$budget" "$cmd"
        status="dry run"
        limit=$budget
    elif [ "$limit" -lt 5 ]; then
        status="skipped: no time left"
    else
        echo "== $name (at most ${limit}s)"
        timeout -k 10 "$limit" bash -c "$cmd" > "$STEPS_DIR/logs/$name.log" 2>&1 || rc=$?
        case $rc in
            0) status=ok ;;
            124|137) status="timed out after ${limit}s" ;;
            *) status="failed (exit $rc)" ;;
        esac
        [ "$rc" = 0 ] || tail -n 5 "$STEPS_DIR/logs/$name.log" | sed 's/^/   | /'
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" "$limit" "logs/$name.log" \
        >> "$STEPS_DIR/steps.tsv"
    echo "   $name: $status ($(( $(date +%s) - start ))s)"
    return 0
}

steps_failed() {
    ! tail -n +2 "$STEPS_DIR/steps.tsv" | cut -f2 | grep -qvx -e ok -e "dry run"
}
