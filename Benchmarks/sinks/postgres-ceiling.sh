#!/usr/bin/env bash
# How fast PostgreSQL itself takes results into the sink's table on this machine, with no
# `pipeline` running beside it (issue 28: "the sink must not slow the run by more than 10%").
# The rows are the records of N mock commands, made by the release `pipeline` (no sink: its
# rate is printed as the run's rate); the table is made by the postgres sink itself (one command
# through `--sink postgres:…`, then emptied), so its columns are exactly the sink's. Then, each
# timed from psql and repeated ROUNDS times on an emptied table:
#   copy    `\copy` straight into the table: the fastest way PostgreSQL offers to take rows
#   upsert  what the sink does per batch, as one batch: COPY into a temporary staging table,
#           then INSERT … SELECT … ON CONFLICT DO UPDATE, one transaction
#   bare    `\copy` into a table of the same five fields without the typed columns the sink
#           derives from the record (provider, model, tokens, cost), record still jsonb
# A sink cannot be faster than `copy`: the figure bounds what any sink could reach here.
#
#   Benchmarks/sinks/postgres-ceiling.sh PIPELINE_BIN [N=200000] [ROUNDS=3]
set -euo pipefail
bin="$1"; n="${2:-200000}"; rounds="${3:-3}"
work="$(mktemp -d /tmp/pipeline-pg-ceiling.XXXXXX)"
source "$(dirname "$0")/throwaway-postgres.sh"
psql_() { psql -h 127.0.0.1 -p "$port" -U app -d postgres -qtA "$@"; }
seconds() { local s e; s="$(date +%s.%N)"; "$@" >/dev/null; e="$(date +%s.%N)"; python3 -c "print(f'{$e - $s:.2f}')"; }

python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])): f.write('{\"id\":\"c%d\",\"model\":\"mock\",\"prompt\":\"question %d\"}\n' % (i, i))
" "$work/in.jsonl" "$n"
start="$(date +%s.%N)"; "$bin" --quiet < "$work/in.jsonl" > "$work/out.jsonl"; end="$(date +%s.%N)"
run_s="$(python3 -c "print(f'{$end - $start:.2f}')")"
# The rows in COPY's text format, as the sink sends them (run id, command id, index, status, record).
python3 - "$work/out.jsonl" "$work/rows.txt" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        d = json.loads(line)
        record = line.rstrip("\n").replace("\\", "\\\\").replace("\t", "\\t")
        out.write(f"ceiling\t{d['id']}\t{d['index']}\t{d['status']}\t{record}\n")
PY
head -1 "$work/in.jsonl" | "$bin" --quiet --sink "postgres:postgresql://app@127.0.0.1:$port/postgres?table=results" > /dev/null
psql_ -c 'TRUNCATE results'
psql_ -c 'CREATE TABLE bare (run_id text NOT NULL, command_id text NOT NULL, command_index bigint NOT NULL, status text NOT NULL,
    record jsonb NOT NULL, written_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run_id, command_id))'
cat > "$work/upsert.sql" <<SQL
BEGIN;
CREATE TEMPORARY TABLE staging (run_id text NOT NULL, command_id text NOT NULL, command_index bigint NOT NULL, status text NOT NULL, record jsonb NOT NULL) ON COMMIT DROP;
\copy staging FROM '$work/rows.txt'
INSERT INTO results (run_id, command_id, command_index, status, record) SELECT * FROM staging
ON CONFLICT (run_id, command_id) DO UPDATE SET command_index = EXCLUDED.command_index, status = EXCLUDED.status, record = EXCLUDED.record, written_at = now();
COMMIT;
SQL

echo "# $n records of $(($(wc -c < "$work/out.jsonl") / n)) bytes; pipeline without a sink: $run_s s ($(python3 -c "print(round($n / $run_s))") commands/s); $(uptime | sed 's/.*load/load/')"
printf '%-7s %6s %10s %12s\n' way round seconds rows_per_s
for r in $(seq 1 "$rounds"); do
    for way in copy upsert bare; do
        psql_ -c 'TRUNCATE results; TRUNCATE bare; CHECKPOINT'
        case "$way" in
            copy) s="$(seconds psql_ -c "\\copy results (run_id, command_id, command_index, status, record) FROM '$work/rows.txt'")" ;;
            upsert) s="$(seconds psql_ -f "$work/upsert.sql")" ;;
            bare) s="$(seconds psql_ -c "\\copy bare (run_id, command_id, command_index, status, record) FROM '$work/rows.txt'")" ;;
        esac
        table=results; [ "$way" = bare ] && table=bare
        rows="$(psql_ -c "SELECT count(*) FROM $table")"
        [ "$rows" = "$n" ] || { echo "$way: $rows rows, expected $n" >&2; exit 1; }
        printf '%-7s %6s %10s %12s\n' "$way" "$r" "$s" "$(python3 -c "print(round($n / $s))")"
    done
done
echo "# $(uptime | sed 's/.*load/load/')"
