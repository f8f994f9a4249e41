import Foundation

/// Where the PostgreSQL sink writes, parsed from a URL such as
/// `postgresql://app@127.0.0.1:5432/runs?table=results&sslmode=require&password_env=RUNS_PG_PASSWORD`.
///
/// The password never comes from the URL (a URL ends up in shell history, process lists and
/// job logs): it is read from the environment variable named by `password_env`, or else libpq
/// reads `PGPASSWORD` (or `~/.pgpass`) itself. A URL that carries one is refused.
///
/// Query options: `table` (a plain identifier, default `results`), `sslmode` (libpq's:
/// `disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`), `password_env` (the
/// name of the variable holding the password), `connect_timeout` (seconds, 2–300, default 10).
/// Anything else is an error naming the option, so a typo is never silently ignored.
public struct PostgresTarget: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String?
    public var table: String
    public var sslMode: String?
    /// The variable the password is read from (nil: libpq's own `PGPASSWORD` / `~/.pgpass`).
    public var passwordEnvironmentVariable: String?
    public var connectTimeoutSeconds: Int

    /// A URL that cannot be used, with what is wrong and how to write it.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    public static let sslModes: Set<String> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    public static let connectTimeoutRange = 2...300

    public init(
        host: String, port: Int = 5432, database: String, user: String? = nil, table: String = "results", sslMode: String? = nil,
        passwordEnvironmentVariable: String? = nil, connectTimeoutSeconds: Int = 10
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.table = table
        self.sslMode = sslMode
        self.passwordEnvironmentVariable = passwordEnvironmentVariable
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// Parses `postgresql://[USER@]HOST[:PORT]/DATABASE[?OPTIONS]` (or `postgres://`).
    public static func parse(_ text: String) throws(ParseError) -> PostgresTarget {
        let example = "e.g. postgresql://app@127.0.0.1:5432/runs?table=results (the password from PGPASSWORD or password_env=VAR)"
        guard text.hasPrefix("postgresql://") || text.hasPrefix("postgres://"),
              let components = URLComponents(string: text)
        else { throw ParseError(message: "a PostgreSQL target must be a postgresql:// URL; \(example)") }
        guard components.password == nil else {
            throw ParseError(message: "the URL must not carry a password: set PGPASSWORD, or name a variable with password_env=VAR")
        }
        guard let host = components.host, !host.isEmpty else { throw ParseError(message: "the URL has no host; \(example)") }
        var port = 5432
        if let given = components.port {
            guard (1...65_535).contains(given) else { throw ParseError(message: "the port must be 1–65535, got \(given)") }
            port = given
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty, !path.contains("/") else { throw ParseError(message: "the URL must name one database after the host (…/DATABASE); \(example)") }
        var target = PostgresTarget(host: host, port: port, database: path, user: components.user.flatMap { $0.isEmpty ? nil : $0 })
        var seen: Set<String> = []
        for item in components.queryItems ?? [] {
            guard seen.insert(item.name).inserted else { throw ParseError(message: "option '\(Self.printable(item.name))' is given twice") }
            try target.set(item.name, to: item.value ?? "")
        }
        return target
    }

    /// Names of the options a URL's query (or a `--sinks` file's `options`) may set.
    public static let optionNames = ["table", "sslmode", "password_env", "connect_timeout"]

    /// Sets one option as the URL's query would; an unknown option or a bad value is an error naming it.
    public mutating func set(_ option: String, to value: String) throws(ParseError) {
        switch option {
        case "table":
            guard Self.isIdentifier(value) else {
                throw ParseError(message: "table must be a plain identifier (a letter or _, then letters, digits or _; at most 63), got '\(Self.printable(value))'")
            }
            table = value
        case "sslmode":
            guard Self.sslModes.contains(value) else {
                throw ParseError(message: "sslmode must be one of \(Self.sslModes.sorted().joined(separator: ", ")), got '\(Self.printable(value))'")
            }
            sslMode = value
        case "password_env":
            guard Self.isIdentifier(value) else {
                throw ParseError(message: "password_env must name an environment variable (letters, digits, _), got '\(Self.printable(value))'")
            }
            passwordEnvironmentVariable = value
        case "connect_timeout":
            guard let seconds = Int(value), Self.connectTimeoutRange.contains(seconds) else {
                throw ParseError(message: "connect_timeout must be a whole number of seconds from 2 to 300, got '\(Self.printable(value))'")
            }
            connectTimeoutSeconds = seconds
        default:
            throw ParseError(message: "unknown option '\(Self.printable(option))'; known: \(Self.optionNames.joined(separator: ", "))")
        }
    }

    /// `user@host:port/database/table`: no password, ever.
    public var description: String { "\(user.map { "\($0)@" } ?? "")\(host):\(port)/\(database)/\(table)" }

    /// libpq's connection keywords and values (the password only when `password_env` names a set variable).
    func connectionParameters(environment: [String: String]) -> (keywords: [String], values: [String]) {
        var pairs: [(String, String)] = [
            ("host", host), ("port", String(port)), ("dbname", database), ("connect_timeout", String(connectTimeoutSeconds)),
            ("application_name", "pipeline"),
            // A host that vanishes without a reset (a paused machine, a dropped route) must not hold
            // the writer in a blocking call for the kernel's 15-minute retransmission limit: TCP
            // keepalives and a user timeout end the connection within a minute, and a statement that
            // runs longer than a minute is cancelled by the server (the sink then halves its batch).
            ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
            ("tcp_user_timeout", "60000"), ("options", "-c statement_timeout=60000"),
        ]
        if let user { pairs.append(("user", user)) }
        if let sslMode { pairs.append(("sslmode", sslMode)) }
        if let password = password(environment: environment) { pairs.append(("password", password)) }
        return (pairs.map(\.0), pairs.map(\.1))
    }

    /// The password this target uses, when it is ours to know (from `password_env` or `PGPASSWORD`): redacted from every message.
    func password(environment: [String: String]) -> String? {
        let name = passwordEnvironmentVariable ?? "PGPASSWORD"
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= 63 else { return false }
        let letter = { (b: UInt8) in (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || b == 0x5f }
        return letter(first) && text.utf8.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    /// Input echoed in a message, with control characters escaped.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(200) {
            if scalar.value < 0x20 || scalar.value == 0x7f { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}
