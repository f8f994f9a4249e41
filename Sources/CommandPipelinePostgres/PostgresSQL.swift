import CommandPipeline

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

    /// The session's staging table for `table`: rows are `COPY`ed into it, then moved into the
    /// table by one `INSERT … SELECT … ON CONFLICT DO UPDATE` in the same transaction; it empties
    /// itself at each commit. A temporary table, so each connection has its own; never named
    /// like the table itself (a temporary table would hide it).
    static func stagingName(_ table: String) -> String { table == "pipeline_sink_staging" ? "pipeline_sink_staging_2" : "pipeline_sink_staging" }

    static func createStaging(_ table: String) -> String {
        """
        CREATE TEMPORARY TABLE IF NOT EXISTS "\(stagingName(table))" (
            run_id text NOT NULL, command_id text NOT NULL, command_index bigint NOT NULL, status text NOT NULL, record jsonb NOT NULL
        ) ON COMMIT DELETE ROWS
        """
    }

    static func copyIntoStaging(_ table: String) -> String {
        "COPY pg_temp.\"\(stagingName(table))\" (run_id, command_id, command_index, status, record) FROM STDIN"
    }

    /// Moves the staged rows into `table` and commits (one simple query: one round trip).
    static func upsertFromStaging(_ table: String) -> String {
        """
        INSERT INTO "\(table)" (run_id, command_id, command_index, status, record)
        SELECT run_id, command_id, command_index, status, record FROM pg_temp."\(stagingName(table))"
        ON CONFLICT (run_id, command_id) DO UPDATE SET command_index = EXCLUDED.command_index, status = EXCLUDED.status, \
        record = EXCLUDED.record, written_at = now(); COMMIT
        """
    }

    /// `rows` in COPY's text format (tab-separated fields, one line a row; backslash, tab, line
    /// feed and carriage return escaped), built straight into one buffer from the rows' bytes. A
    /// command id twice in `rows` keeps the later row only, as `upsert` does (the upsert from the
    /// staging table cannot touch a row twice).
    static func copyText<Rows: Collection<SinkRow>>(_ rows: Rows) -> [UInt8] {
        var last: [SinkRowKey: Int] = [:]
        last.reserveCapacity(rows.count)
        var size = 0
        for (i, row) in rows.enumerated() {
            last[row.key] = i
            size = size.addingSaturating(row.retainedBytes)
        }
        var out: [UInt8] = []
        out.reserveCapacity(size)
        for (i, row) in rows.enumerated() where last.count == rows.count || last[row.key] == i {
            appendField(row.runID, to: &out)
            out.append(0x09)
            appendField(row.commandID, to: &out)
            out.append(0x09)
            appendDecimal(row.index, to: &out)
            out.append(0x09)
            out.append(contentsOf: row.status.rawValue.utf8)
            out.append(0x09)
            appendField(row.record, to: &out)
            out.append(0x0a)
        }
        return out
    }

    /// `n` in decimal digits, without making a string.
    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n < 0 { out.append(0x2d) }
        var value = n.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for the 20 digits of any Int
        var count = 0
        withUnsafeMutableBytes(of: &digits) { tmp in
            repeat {
                tmp[count] = 0x30 + UInt8(value % 10)
                value /= 10
                count += 1
            } while value > 0
            for k in stride(from: count - 1, through: 0, by: -1) { out.append(tmp[k]) }
        }
    }

    private static func appendField<C: Collection>(_ bytes: C, to out: inout [UInt8]) where C.Element == UInt8 {
        // Most fields need no escape: one copy.
        guard bytes.contains(where: { $0 == 0x5c || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }) else {
            out.append(contentsOf: bytes)
            return
        }
        for b in bytes {
            switch b {
            case 0x5c: out += [0x5c, 0x5c]
            case 0x09: out += [0x5c, 0x74]
            case 0x0a: out += [0x5c, 0x6e]
            case 0x0d: out += [0x5c, 0x72]
            default: out.append(b)
            }
        }
    }

    /// One upsert of `rows` (one statement, so one transaction), with its parameters, five a row.
    /// A command id twice in one batch (two commands with the same id) would make PostgreSQL
    /// refuse the whole statement ("cannot affect row a second time"): the later row wins, as it
    /// would across batches, so the earlier one is left out.
    static func upsert(_ table: String, _ rows: [SinkRow]) -> (sql: String, parameters: [String]) {
        var last: [SinkRowKey: Int] = [:]
        for (i, row) in rows.enumerated() { last[row.key] = i }
        var parameters: [String] = []
        parameters.reserveCapacity(rows.count * 5)
        for (i, row) in rows.enumerated() where last[row.key] == i {
            parameters += [row.runIDText, row.commandIDText, String(row.index), row.status.rawValue, row.recordText]
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
