import CPostgres

/// What PostgreSQL (or libpq) said when something failed: the SQLSTATE when the server sent
/// one, the message, and whether the connection is gone (then the sink reconnects).
struct PostgresFailure: Error, Sendable, Hashable {
    var sqlState: String?
    var message: String
    var connectionLost: Bool

    /// Class 22 (data exception) and 23 (integrity constraint): the rows are at fault, not the
    /// server, so retrying the same batch would fail forever; the sink retries row by row.
    var isRowProblem: Bool { sqlState.map { $0.hasPrefix("22") || $0.hasPrefix("23") } ?? false }
    /// 42P01: the table is gone (dropped mid-run); the sink creates it again.
    var isMissingTable: Bool { sqlState == "42P01" }
    /// A key for "report once": the SQLSTATE, or the kind of failure when there is none. A
    /// server going away is one fault however it is spelled: a lost connection, class 08
    /// (connection exception) and 57P (operator intervention: the server shutting down while a
    /// statement or `COPY` runs, then refusing connections while it starts).
    var kind: String {
        if connectionLost || sqlState.map({ $0.hasPrefix("08") || $0.hasPrefix("57P") }) == true { return "connection" }
        return sqlState ?? "client"
    }
}

/// One libpq connection, used by the sink's writer thread alone (libpq calls block).
final class PostgresConnection {
    private let connection: OpaquePointer

    private init(_ connection: OpaquePointer) { self.connection = connection }

    deinit { PQfinish(connection) }

    /// Connects with libpq's keyword parameters (never a connection string, so no value is
    /// parsed as anything but itself).
    static func connect(keywords: [String], values: [String]) -> Result<PostgresConnection, PostgresFailure> {
        let keys = CStrings(keywords), vals = CStrings(values)
        let raw = keys.withPointers { k in vals.withPointers { v in PQconnectdbParams(k, v, 0) } }
        guard let raw else { return .failure(PostgresFailure(sqlState: nil, message: "libpq could not allocate a connection", connectionLost: true)) }
        guard PQstatus(raw) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(raw))
            PQfinish(raw)
            return .failure(PostgresFailure(sqlState: nil, message: message, connectionLost: true))
        }
        // libpq prints notices ("relation … already exists, skipping") on stderr by default:
        // the CLI's stderr is for its own lines.
        PQsetNoticeProcessor(raw, { _, _ in }, nil)
        return .success(PostgresConnection(raw))
    }

    var isBroken: Bool { PQstatus(connection) != CONNECTION_OK }

    /// Runs one statement, with text parameters `$1…$n` when given.
    func execute(_ sql: String, parameters: [String] = []) throws(PostgresFailure) {
        let result: OpaquePointer?
        if parameters.isEmpty {
            result = PQexec(connection, sql)
        } else {
            let values = CStrings(parameters)
            result = values.withPointers { p in
                PQexecParams(connection, sql, Int32(clamping: parameters.count), nil, p, nil, nil, 0)
            }
        }
        defer { PQclear(result) }
        let status = result.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        guard status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK else { return }
        throw failure(result)
    }

    /// Runs `COPY … FROM STDIN` (`sql`) with `data`, rows in COPY's text format, sent in chunks
    /// of 1 MiB; throws what the server said (a row it cannot take fails the whole COPY).
    func copyIn(_ sql: String, data: [UInt8]) throws(PostgresFailure) {
        let start = PQexec(connection, sql)
        let status = start.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        guard status == PGRES_COPY_IN else {
            defer { PQclear(start) }
            throw failure(start)
        }
        PQclear(start)
        let sent = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = min(raw.count - offset, 1 << 20)
                let chars = raw.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self)
                guard PQputCopyData(connection, chars, Int32(n)) == 1 else { return false }
                offset += n
            }
            return true
        }
        let ended = PQputCopyEnd(connection, sent ? nil : "the client could not send the rows") == 1
        var problem: PostgresFailure?
        // The COPY's own result, then nil; a connection stuck in the COPY state is broken.
        while let result = PQgetResult(connection) {
            let status = PQresultStatus(result)
            let stuck = status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH
            if status != PGRES_COMMAND_OK && problem == nil {
                problem = failure(result)
                if stuck { problem?.connectionLost = true }
            }
            PQclear(result)
            if stuck { break }
        }
        if problem == nil && !(sent && ended) { problem = failure(nil) }
        if let problem { throw problem }
    }

    /// What a failed `result` (or, without one, the connection) says.
    private func failure(_ result: OpaquePointer?) -> PostgresFailure {
        var sqlState: String?
        if let result, let field = PQresultErrorField(result, Int32(UInt8(ascii: "C"))) { sqlState = String(cString: field) }
        let message = result.flatMap { r in PQresultErrorMessage(r).map { String(cString: $0) } }.flatMap { $0.isEmpty ? nil : $0 }
            ?? Self.trimmed(PQerrorMessage(connection))
        return PostgresFailure(sqlState: sqlState, message: Self.trimmed(message), connectionLost: isBroken)
    }

    private static func trimmed(_ text: UnsafePointer<CChar>?) -> String { trimmed(text.map { String(cString: $0) } ?? "") }

    private static func trimmed(_ text: String) -> String {
        var t = Substring(text)
        while let last = t.last, last.isWhitespace { t.removeLast() }
        let oneLine = t.split(whereSeparator: \.isNewline).map { $0.trimmingPrefix(while: \.isWhitespace) }.joined(separator: "; ")
        return oneLine.isEmpty ? "unknown error" : oneLine
    }
}

/// Strings as one buffer of NUL-terminated C strings, and a NULL-terminated array of pointers
/// into it (what libpq's keyword and parameter arrays take). One allocation each, whatever the count.
private struct CStrings {
    private var bytes: [CChar] = []
    private var offsets: [Int] = []

    init(_ strings: [String]) {
        offsets.reserveCapacity(strings.count)
        for s in strings {
            offsets.append(bytes.count)
            // A NUL inside a value would cut it short: the sink refuses such values before they get here.
            bytes.append(contentsOf: s.utf8.map { CChar(bitPattern: $0) })
            bytes.append(0)
        }
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        bytes.withUnsafeBufferPointer { buffer in
            var pointers: [UnsafePointer<CChar>?] = offsets.map { offset in buffer.baseAddress.map { $0 + offset } }
            pointers.append(nil)
            return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }
}
