/// The statements the PostgreSQL sink sends. The table name is a checked plain identifier
/// (`PostgresTarget.isIdentifier`), quoted; every value goes as a parameter, never as SQL text.
enum PostgresSQL {
    static func createTable(_ table: String) -> String {
        """
        CREATE TABLE IF NOT EXISTS "\(table)" (
            run_id text NOT NULL,
            command_id text NOT NULL,
            command_index bigint NOT NULL,
            status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
            provider text GENERATED ALWAYS AS (record->'telemetry'->>'provider') STORED,
            model text GENERATED ALWAYS AS (record->'responses'->0->>'model') STORED,
            prompt_tokens bigint GENERATED ALWAYS AS (\(integer("record->'usage'->'prompt_tokens'"))) STORED,
            completion_tokens bigint GENERATED ALWAYS AS (\(integer("record->'usage'->'completion_tokens'"))) STORED,
            total_tokens bigint GENERATED ALWAYS AS (\(integer("record->'usage'->'total_tokens'"))) STORED,
            cached_tokens bigint GENERATED ALWAYS AS (\(integer("record->'usage'->'cached_tokens'"))) STORED,
            cost_usd double precision GENERATED ALWAYS AS (
                CASE WHEN jsonb_typeof(record->'telemetry'->'cost'->'usd') = 'number'
                THEN (record->'telemetry'->'cost'->>'usd')::double precision END) STORED,
            record jsonb NOT NULL,
            written_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run_id, command_id)
        )
        """
    }

    /// A whole JSON number as bigint, NULL for anything else (a missing field, null, a fraction
    /// or a number beyond bigint), so no record can make the row fail on a generated column.
    private static func integer(_ path: String) -> String {
        "CASE WHEN jsonb_typeof(\(path)) = 'number' AND (\(path))::text ~ '^-?[0-9]{1,18}$' THEN ((\(path))::text)::bigint END"
    }

    /// One upsert of `rows` (one statement, so one transaction), with its parameters, five a row.
    /// A command id twice in one batch (two commands with the same id) would make PostgreSQL
    /// refuse the whole statement ("cannot affect row a second time"): the later row wins, as it
    /// would across batches, so the earlier one is left out.
    static func upsert(_ table: String, _ rows: [PostgresSink.Row]) -> (sql: String, parameters: [String]) {
        var last: [String: Int] = [:]
        for (i, row) in rows.enumerated() { last[row.runID + "\u{0}" + row.commandID] = i }
        var parameters: [String] = []
        parameters.reserveCapacity(rows.count * 5)
        for (i, row) in rows.enumerated() where last[row.runID + "\u{0}" + row.commandID] == i {
            parameters += [row.runID, row.commandID, String(row.index), row.status, row.record]
        }
        var sql = "INSERT INTO \"\(table)\" (run_id, command_id, command_index, status, record) VALUES "
        sql.reserveCapacity(200 + parameters.count * 8)
        for r in 0..<(parameters.count / 5) {
            let p = r * 5
            if r > 0 { sql += "," }
            sql += "($\(p + 1),$\(p + 2),$\(p + 3)::bigint,$\(p + 4),$\(p + 5)::jsonb)"
        }
        sql += """
             ON CONFLICT (run_id, command_id) DO UPDATE SET command_index = EXCLUDED.command_index, status = EXCLUDED.status, \
            record = EXCLUDED.record, written_at = now()
            """
        return (sql, parameters)
    }
}
