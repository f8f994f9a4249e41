import Foundation
import PipelineTestSupport

/// A throwaway PostgreSQL cluster for one test: `initdb` into a temporary directory (password
/// authentication, user `app`), a server on a free loopback port with its socket in that
/// directory, read back with Debian's `psql` (a real client, not ours). As root the server runs
/// as the `postgres` user (PostgreSQL refuses to run as root). `.ci/run` installs `postgresql`.
final class PostgresServer: Sendable {
    let directory: String
    let port: Int
    let user = "app"
    let password: String
    private let bin: String
    private let asPostgres: Bool

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// `postgresql://app@127.0.0.1:PORT/postgres?…`
    func url(table: String = "results", extra: String = "") -> String {
        "postgresql://\(user)@127.0.0.1:\(port)/postgres?table=\(table)\(extra)"
    }

    static func start(password: String = "pw-\(UUID().uuidString.prefix(8))") throws -> PostgresServer {
        guard let bin = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.sorted().last.map({ "/usr/lib/postgresql/\($0)/bin" }),
              FileManager.default.isExecutableFile(atPath: bin + "/initdb")
        else { throw Problem(description: "PostgreSQL's server is not installed (Debian: apt-get install postgresql; .ci/run installs it)") }
        let asPostgres = getuid() == 0
        let directory = try temporaryDirectory().path
        let server = PostgresServer(directory: directory, port: try freePort(), password: password, bin: bin, asPostgres: asPostgres)
        try password.write(toFile: directory + "/pwfile", atomically: true, encoding: .utf8)
        if asPostgres {
            _ = try runProcess(URL(fileURLWithPath: "/bin/chown"), ["-R", "postgres:postgres", directory], timeout: 30)
            _ = try runProcess(URL(fileURLWithPath: "/bin/chmod"), ["755", directory], timeout: 30)
        }
        try server.run("initdb", ["-D", directory + "/data", "-A", "md5", "-U", "app", "--pwfile=" + directory + "/pwfile", "--no-sync", "-E", "UTF8"], timeout: 120)
        try server.startServer()
        return server
    }

    private init(directory: String, port: Int, password: String, bin: String, asPostgres: Bool) {
        self.directory = directory
        self.port = port
        self.password = password
        self.bin = bin
        self.asPostgres = asPostgres
    }

    func startServer() throws {
        try run("pg_ctl", ["-D", directory + "/data", "-l", directory + "/server.log", "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off", "-w", "-t", "60", "start"], timeout: 90)
    }

    func stopServer(mode: String = "fast") throws {
        try run("pg_ctl", ["-D", directory + "/data", "-m", mode, "-w", "-t", "60", "stop"], timeout: 90)
    }

    deinit {
        _ = try? run("pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "-t", "30", "stop"], timeout: 40)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `sql` with `psql` (each of `more` in a transaction of its own after it) and returns
    /// its unaligned output (`-tA`), trimmed.
    @discardableResult
    func psql(_ sql: String, _ more: String...) throws -> String {
        let result = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["PGPASSWORD=\(password)", "psql", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", "postgres", "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql] + more.flatMap { ["-c", $0] },
            timeout: 60)
        guard result.status == 0 else { throw Problem(description: "psql failed (\(result.status)): \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a PostgreSQL tool (as `postgres` when we are root), with every inherited descriptor
    /// but stdio closed first: the server that `pg_ctl start` leaves running would otherwise keep
    /// the descriptor Foundation's `Process` watches, and the start would never seem to end.
    private func run(_ tool: String, _ arguments: [String], timeout: TimeInterval) throws {
        let closeInherited = #"for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done 2>/dev/null; exec "$@""#
        let command = (asPostgres ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] : []) + [bin + "/" + tool] + arguments
        let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", closeInherited, "bash"] + command, timeout: timeout)
        guard result.status == 0 else { throw Problem(description: "\(tool) failed (\(result.status)): \(result.output)") }
    }

    /// A loopback port nobody listens on now (bound and released).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Problem(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw Problem(description: "bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Waits (bounded) until `condition` holds: the sink writes on a thread of its own, and a run
/// goes on in a process of its own.
func waitUntil(_ what: String, within seconds: Int = 60, _ condition: () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw PostgresServer.Problem(description: "timed out after \(seconds) s waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}
