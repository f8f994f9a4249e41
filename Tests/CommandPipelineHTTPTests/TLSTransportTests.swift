import CommandPipeline
import Foundation
import PipelineTestSupport
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@testable import CommandPipelineHTTP

/// `https://` on the own HTTP/1.1 transport, TLS through the system's OpenSSL (ADR 0007),
/// against Python TLS servers (`Tests/Tools/tls_server.py`) with certificates from a CA the
/// test makes: success with `--ca-file` and keep-alive reuse; a wrong host name, an unknown
/// CA, an expired certificate, a server below TLS 1.2, a plain-http port, a server that stalls
/// in the handshake: each a precise failed command, with nothing of the request — no header,
/// no key — reaching the server, and no hang. Serialized: the tests read the servers' counts.
@Suite(.serialized)
struct TLSTransportTests {
    static let key = HostileServerTests.canary

    struct State {
        var ports: [String: Int]
        var connections: [String: Int]
        /// Handshakes that resumed an earlier session, per scenario.
        var resumed: [String: Int]
        var received: [String: [String]]
        var notes: [String: Any]
    }

    static func state() throws -> State {
        let (control, _) = try Peers.tlsScenarios.get()
        let data = try Data(contentsOf: control.appendingPathComponent("state"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return State(
            ports: object["ports"] as? [String: Int] ?? [:], connections: object["connections"] as? [String: Int] ?? [:],
            resumed: object["resumed"] as? [String: Int] ?? [:], received: object["received"] as? [String: [String]] ?? [:], notes: object["notes"] as? [String: Any] ?? [:])
    }

    static func base(_ scenario: String, host: String = "127.0.0.1") throws -> String {
        let port = try #require(try state().ports[scenario], "no port for \(scenario)")
        return "https://\(host):\(port)/v1"
    }

    /// `count` commands through the CLI (OpenAI adapter) to `base`, the key in `CANARY_KEY`.
    static func run(_ base: String, count: Int = 1, caFile: Bool = true, extra: [String] = []) throws -> PipelineRun {
        let (_, ca) = try Peers.tlsScenarios.get()
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = key
        environment["COMMANDPIPELINE_HTTP_TRANSPORT"] = nil
        let input = (0..<count).map { #"{"id":"c\#($0)","model":"m","prompt":"hi"}"# }.joined(separator: "\n") + "\n"
        return try runPipelineBlocking(
            ["--provider", "openai", "--base-url", base, "--api-key-env", "CANARY_KEY", "--quiet"] + (caFile ? ["--ca-file", ca.path] : []) + extra,
            stdin: input, environment: environment, timeout: .seconds(120))
    }

    @Test func aServerWithTheTrustedCAAnswersOverOneKeptAliveConnection() throws {
        let before = try Self.state().connections["good"] ?? 0
        let run = try Self.run(try Self.base("good"), count: 20, extra: ["--concurrency", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.count == 20)
        for record in run.records {
            #expect(record["status"] as? String == "succeeded", "\(record)")
            #expect(record[path: "responses.0.text"] as? String == "over tls", "\(record)")
        }
        let after = try Self.state()
        // One connection, one handshake, for 20 requests one after another.
        #expect((after.connections["good"] ?? 0) - before == 1)
        let requests = after.received["good"] ?? []
        #expect(requests.count >= 20)
        // What went through the TLS connection is the request: the key and the Host the server is named by.
        #expect(requests.last?.contains("Authorization: Bearer \(Self.key)") == true)
        #expect(requests.last?.contains("Host: 127.0.0.1:\(after.ports["good"] ?? 0)\r\n") == true)
        #expect(!HostileServerTests.leaks(run.stdout + run.stderr))
    }

    /// Session resumption (ADR 0007): a new connection to an origin resumes the session the
    /// server gave an earlier one (its TLS 1.3 ticket) instead of a full handshake. The server
    /// closes after each answer, so three commands one after another make three connections:
    /// the first a full handshake, the next two resumed.
    @Test func aNewConnectionResumesTheSessionOfAnEarlierOne() throws {
        let before = try Self.state()
        let run = try Self.run(try Self.base("untilclose") + "/framed", count: 3, extra: ["--concurrency", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.count == 3)
        for record in run.records { #expect(record["status"] as? String == "succeeded", "\(record)") }
        let after = try Self.state()
        #expect((after.connections["untilclose"] ?? 0) - (before.connections["untilclose"] ?? 0) == 3)
        #expect((after.resumed["untilclose"] ?? 0) - (before.resumed["untilclose"] ?? 0) == 2)
        // Resumed or not, each connection carried its request (and the key) only after its handshake.
        let requests = (after.received["untilclose"] ?? []).dropFirst(before.received["untilclose"]?.count ?? 0)
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0.contains("Authorization: Bearer \(Self.key)") })
    }

    /// A failed handshake ends the origin's saved session (RFC 5246 §7.2.2; `HTTP1EventLoop`):
    /// the 1st connection's session is kept; the 2nd meets a server that cannot resume it and
    /// shows a certificate nobody trusts (`tls_failed`); the 3rd meets the 1st's server again,
    /// which would resume the 1st's session if it were offered — it is not: a full handshake.
    @Test func aFailedHandshakeEndsTheSavedSession() throws {
        let before = try Self.state()
        #expect((before.connections["flip"] ?? 0) % 2 == 0, "the flip server's next connection is a good one")
        let run = try Self.run(try Self.base("flip") + "/framed", count: 3, extra: ["--concurrency", "1", "--max-attempts", "1"])
        #expect(run.records.count == 3)
        #expect(run.records.map { $0["status"] as? String } == ["succeeded", "failed", "succeeded"], "\(run.records)")
        #expect(run.records.dropFirst().first?[path: "error.details.code"] as? String == "tls_failed", "\(run.records)")
        let after = try Self.state()
        #expect((after.connections["flip"] ?? 0) - (before.connections["flip"] ?? 0) == 3)
        #expect((after.resumed["flip"] ?? 0) - (before.resumed["flip"] ?? 0) == 0, "the 3rd connection resumed a session the failure should have ended")
        #expect(!HostileServerTests.leaks(run.stdout + run.stderr))
    }

    /// Many connections opened at once to a new origin: the first makes the full handshake,
    /// the others hold theirs until its ticket arrives, then resume it (no certificate parsed
    /// and verified again on either side; what made 256 commands at 1 s slow over https).
    /// A bound keeps a slow ticket from holding them long: under heavy load some may go ahead
    /// with full handshakes, so the check is that most resumed, not all.
    @Test func connectionsOpenedAtOnceResumeTheFirstOnesSession() throws {
        let before = try Self.state()
        let run = try Self.run(try Self.base("good"), count: 16, extra: ["--concurrency", "16"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.filter { $0["status"] as? String == "succeeded" }.count == 16, "\(run.records)")
        let after = try Self.state()
        let connections = (after.connections["good"] ?? 0) - (before.connections["good"] ?? 0)
        let resumed = (after.resumed["good"] ?? 0) - (before.resumed["good"] ?? 0)
        #expect(connections >= 2)
        #expect(resumed < connections, "the first connection cannot resume anything")
        #expect(resumed * 2 >= connections, "\(resumed) of \(connections) connections resumed")
        #expect(!HostileServerTests.leaks(run.stdout + run.stderr))
    }

    /// By name: SNI and the certificate's DNS name (`localhost` may resolve to ::1 first, where
    /// nothing listens: the next address is tried).
    @Test func aServerNamedByHostNameIsVerifiedByThatName() throws {
        let run = try Self.run(try Self.base("good", host: "localhost"))
        #expect(run.records.first?["status"] as? String == "succeeded", "\(run.records) \(run.stderr)")
    }

    /// Each refusal: `tls_failed`, not retried, the host and OpenSSL's reason named, and the
    /// server decrypted nothing (no request, no key).
    @Test(arguments: [
        ("wronghost", "localhost", "hostname mismatch", true),
        ("wronghost", "127.0.0.1", "IP address mismatch", true),
        ("expired", "127.0.0.1", "certificate has expired", true),
        ("unknownca", "127.0.0.1", "unable to get local issuer certificate", true),
        ("good", "127.0.0.1", "unable to get local issuer certificate", false),
    ])
    func aCertificateThatCannotBeVerifiedSendsNothing(scenario: String, host: String, reason: String, trustTheTestCA: Bool) throws {
        let before = try Self.state().connections[scenario] ?? 0
        let requestsBefore = try Self.state().received[scenario]?.count ?? 0
        let run = try Self.run(try Self.base(scenario, host: host), caFile: trustTheTestCA)
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record["status"] as? String == "failed")
        #expect(record[path: "error.details.code"] as? String == "tls_failed", "\(record)")
        #expect(record[path: "error.retryable"] as? Bool == false, "\(record)")
        let message = record[path: "error.message"] as? String ?? ""
        #expect(message.contains("certificate of \(host) was refused (\(reason))"), "\(message)")
        #expect(message.contains("nothing was sent"), "\(message)")
        if !trustTheTestCA { #expect(message.contains("--ca-file"), "the hint names the way to trust a private CA: \(message)") }
        let after = try Self.state()
        // Not retried: one connection for the one command (three attempts would make three).
        #expect((after.connections[scenario] ?? 0) - before == 1)
        #expect((after.received[scenario]?.count ?? 0) == requestsBefore, "the server received a request: \(after.received[scenario] ?? [])")
        #expect(!HostileServerTests.leaks(run.stdout + run.stderr))
    }

    /// A server that offers only TLS 1.0 (or 1.1 where this machine's OpenSSL will not serve
    /// 1.0): the client's minimum is 1.2, so the handshake fails, precisely and once.
    @Test func aServerBelowTLS12IsRefused() throws {
        let requestsBefore = try Self.state().received["tls10"]?.count ?? 0
        let run = try Self.run(try Self.base("tls10"))
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record[path: "error.details.code"] as? String == "tls_failed", "\(record)")
        #expect(record[path: "error.retryable"] as? Bool == false, "\(record)")
        let message = record[path: "error.message"] as? String ?? ""
        #expect(message.contains("TLS: the handshake with 127.0.0.1 failed ("), "\(message)")
        #expect(message.contains("TLS 1.2 or later"), "\(message)")
        #expect((try Self.state().received["tls10"]?.count ?? 0) == requestsBefore)
    }

    /// `https://` to a port that speaks plain http: OpenSSL's reason (not TLS), not retried.
    @Test func aPlainHTTPPortIsATLSFailure() throws {
        let run = try Self.run(try Self.base("plain"))
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record[path: "error.details.code"] as? String == "tls_failed", "\(record)")
        #expect((record[path: "error.message"] as? String ?? "").contains("the handshake with 127.0.0.1 failed"), "\(record)")
        // What the server got is the TLS ClientHello, which carries no request and no key.
        let received = try Self.state().received["plain"] ?? []
        #expect(!received.isEmpty)
        #expect(!received.contains { $0.contains("Authorization") || HostileServerTests.leaks($0) })
    }

    /// A server that accepts and never answers the handshake: the run's `--timeout` ends the
    /// command (deadlines hold during handshakes), and nothing but the ClientHello went out.
    @Test func aServerThatStallsInTheHandshakeCannotHangTheRun() throws {
        let run = try Self.run(try Self.base("stall"), extra: ["--timeout", "2", "--max-attempts", "1"])
        #expect(!run.timedOut)
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record["status"] as? String == "failed")
        #expect(record[path: "error.kind"] as? String == "timeout", "\(record)")
        let received = try Self.state().received["stall"] ?? []
        #expect(!received.contains { $0.contains("Authorization") || HostileServerTests.leaks($0) })
    }

    /// The transport's own handshake timeout (the request timeout: silence that long), through
    /// the library's API: a `tls_failed` timeout naming the host, retryable.
    @Test func theHandshakeHasTheRequestTimeout() async throws {
        let (_, ca) = try Peers.tlsScenarios.get()
        let client = HTTPClient(requestTimeout: 0.5, resourceTimeout: 30, caFile: ca)
        let url = try #require(URL(string: try Self.base("stall") + "/chat/completions"))
        let started = ContinuousClock.now
        do {
            _ = try await client.send(URLRequest(url: url, timeoutInterval: 0.5))
            Issue.record("a stalled handshake answered")
        } catch let HTTPClient.Failure.tls(failure) {
            #expect(failure.stage == .timeout)
            #expect(failure.host == "127.0.0.1")
            #expect(failure.retryable)
            let mapped = TransportErrors(providerName: "openai", baseURL: url, key: nil, requestTimeout: 0.5)
                .error(transport: HTTPClient.Failure.tls(failure), endpoint: url.absoluteString)
            #expect(mapped.kind == .timeout && mapped.code == "tls_failed" && mapped.retryable, "\(mapped)")
        }
        // Bounded: far less than the 30 s deadline (no wall-clock equality, only a bound).
        #expect(ContinuousClock.now - started < .seconds(25))
    }

    /// An upload over https goes through the own transport, its body read from the file as it
    /// goes out (several pieces of 256 KiB): the server receives exactly the file's bytes.
    @Test func anUploadStreamsItsFileOverTLS() async throws {
        let (_, ca) = try Peers.tlsScenarios.get()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var generator = SeededRandom(seed: 22)
        let bytes = (0..<(3 << 20) + 12_345).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let file = dir.appendingPathComponent("upload.bin")
        try Data(bytes).write(to: file)
        let client = HTTPClient(requestTimeout: 30, resourceTimeout: 60, caFile: ca)
        var request = URLRequest(url: try #require(URL(string: try Self.base("good") + "/files")), timeoutInterval: 30)
        request.httpMethod = "POST"
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        let response = try await client.upload(request, fromFile: file)
        #expect(response.status == 200)
        let digest = try runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [file.path], timeout: 30).output.prefix(64)
        let received = try Self.state().received["good"]?.last ?? ""
        #expect(received.hasPrefix("POST /v1/files HTTP/1.1\r\n"), "\(received.prefix(300))")
        #expect(received.contains("Content-Length: \(bytes.count)\r\n"), "\(received.prefix(300))")
        #expect(received.hasSuffix("[\(bytes.count) body bytes, sha256 \(digest)]"), "\(received.suffix(120))")
    }

    // MARK: - A body delimited by the close (RFC 9112 §9.8)

    /// A body with no `Content-Length` and no chunks ends with the connection. Over TLS only a
    /// close_notify vouches for that end: the same answer ended by a bare TCP close (what an
    /// attacker cutting the stream would send) is refused as truncated, not taken as whole;
    /// a body framed by its length is whole before any close and is accepted either way.
    @Test func aBodyDelimitedByTheCloseNeedsTLSsCloseNotify() async throws {
        let (_, ca) = try Peers.tlsScenarios.get()
        let base = try Self.base("untilclose")
        let client = HTTPClient(requestTimeout: 60, resourceTimeout: 120, caFile: ca)
        func get(_ path: String) async throws -> HTTPClient.Response {
            try await client.send(URLRequest(url: try #require(URL(string: base + path)), timeoutInterval: 60))
        }
        let whole = try await get("/close-notify")
        #expect(whole.status == 200)
        #expect(String(decoding: whole.body, as: UTF8.self).contains("over tls"), "\(String(decoding: whole.body, as: UTF8.self))")
        let framed = try await get("/framed")
        #expect(framed.status == 200 && framed.body.count > 0 && framed.headers["content-length"] == String(framed.body.count))
        do {
            let cut = try await get("/no-close-notify")
            Issue.record("a close-delimited body ended without close_notify was accepted: \(cut.status), \(cut.body.count) bytes")
        } catch let HTTPClient.Failure.connectionLost(receivedBytes, _) {
            // What arrived before the close is counted, never handed over as the answer.
            #expect(receivedBytes > 0)
        }
        let received = try Self.state().received["untilclose"] ?? []
        #expect(received.filter { $0.hasPrefix("GET /v1/no-close-notify ") }.count == 1, "refused once, not sent again: \(received)")
    }

    // MARK: - The CA file

    @Test func aCAFileIsCheckedAtStart() throws {
        let dir = try temporaryDirectory(files: ["not-pem.txt": "not a certificate\n"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let (_, ca) = try Peers.tlsScenarios.get()
        #expect(HTTPClient.caFileProblem(ca) == nil)
        #expect(HTTPClient.caFileProblem(dir.appendingPathComponent("not-pem.txt")) != nil)
        #expect(HTTPClient.caFileProblem(dir.appendingPathComponent("missing.pem")) != nil)
        for (file, says) in [("not-pem.txt", "PEM"), ("missing.pem", "missing.pem"), ("", "directory")] {
            let path = file.isEmpty ? dir.path : dir.appendingPathComponent(file).path
            let run = try runPipelineBlocking(
                ["--provider", "openai", "--base-url", "https://127.0.0.1:9/v1", "--ca-file", path], stdin: #"{"model":"m","prompt":"hi"}"#,
                timeout: .seconds(60))
            #expect(run.status == 2, "\(file): \(run.status) \(run.stderr)")
            #expect(run.stderr.contains("--ca-file") && run.stderr.contains(says), "\(run.stderr)")
            #expect(run.stdout.isEmpty)
        }
    }

    // MARK: - Compressed answers over https (issue 21's leftover)

    /// A 3xx (and a 200) whose body is gzip, over https: refused as compressed before a byte is
    /// inflated, as on plain http; URLSession, which inflated them, is off the path.
    @Test(arguments: ["gzip-bomb-redirect", "gzip-bomb", "gzip-small"])
    func aCompressedAnswerOverHTTPSIsRefused(route: String) throws {
        let (base, ca) = try Peers.hostileTLS.get()
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = Self.key
        environment["COMMANDPIPELINE_HTTP_TRANSPORT"] = nil
        let run = try runPipelineBlocking(
            ["--provider", "openai", "--base-url", base.absoluteString, "--api-key-env", "CANARY_KEY", "--ca-file", ca.path, "--max-attempts", "1", "--quiet"],
            stdin: #"{"id":"z","model":"\#(route)","prompt":"hi"}"# + "\n", environment: environment, timeout: .seconds(120))
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record[path: "error.details.code"] as? String == "response_compressed", "\(route): \(record)")
        #expect(!HostileServerTests.leaks(run.stdout + run.stderr))
    }
}
